"""The edge where exceptions become HTTP answers (and, later, WebSocket close codes).

Exception tree of the server package::

    FleetError                      base of everything the server raises on purpose
    ├── StartupError                cannot start: Redis missing or unreachable, data dir in use
    └── ApiError                    a request cannot be served; carries status and code
        ├── NotFound                404 not_found
        ├── BadRequest              400 bad_request (and 422 validation_failed)
        ├── Conflict                409 conflict
        ├── TooLarge                413 too_large (a request body over its limit)
        └── ServiceUnavailable      503 not_ready

A Redis connection that fails or times out (redis-py's ``ConnectionError``/``TimeoutError``, which
:mod:`server.resp` raises too) answers 503 ``not_ready`` with ``Retry-After``; anything else
unexpected answers 500 ``internal_error`` and is logged with its traceback.

Every error answer, whatever raised it, has one JSON shape::

    {"error": {"status": 404, "code": "not_found", "message": "…", "details": …}}
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.auth import redact

log = logging.getLogger("fleet.server")


class FleetError(Exception):
    """Base class of the errors the server raises on purpose."""


class StartupError(FleetError):
    """The server cannot start; the message is one sentence for the operator."""


class ApiError(FleetError):
    """A request cannot be served."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooLarge(ApiError):
    status, code = 413, "too_large"


class ServiceUnavailable(ApiError):
    status, code = 503, "not_ready"


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one JSON shape of every error answer."""
    return {"error": {"status": status, "code": code, "message": message, "details": details}}


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_failed",
    429: "rate_limited",
    503: "not_ready",
}


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    return Response(
        error_body(exc.status, exc.code, exc.message, exc.details), status_code=exc.status
    )


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code = (
        "validation_failed" if isinstance(exc, ValidationException) else _CODES.get(status, "error")
    )
    details = exc.extra if exc.extra else None
    # Headers the exception carries stay: a 405's Allow (RFC 9110), a 401's WWW-Authenticate.
    return Response(
        error_body(status, code, exc.detail, details), status_code=status, headers=exc.headers
    )


RETRY_AFTER_S = 5


def _redis_outage(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Redis unreachable or stuck: the request may succeed later, so 503 with Retry-After (and
    one log line, not a traceback per request through an outage)."""
    path = redact(request.url.path)
    log.warning("%s %s: Redis is unavailable (%s)", request.method, path, exc)
    body = error_body(503, "not_ready", "the state store (Redis) does not answer; retry shortly",
                      {"redis": "unreachable"})  # fmt: skip
    return Response(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception(
        "unhandled error on %s %s", request.method, redact(request.url.path), exc_info=exc
    )
    status = HTTP_500_INTERNAL_SERVER_ERROR
    return Response(
        error_body(status, "internal_error", "The server failed to handle this request."),
        status_code=status,
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    HTTPException: _http_error,
    RedisConnectionError: _redis_outage,  # also BusyLoadingError (Redis still loading its data)
    RedisTimeoutError: _redis_outage,
    Exception: _unexpected,
}
