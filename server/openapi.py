"""The OpenAPI document told the truth about errors and sign-in.

Litestar documents an error as its own default body (``status_code``, ``detail``), and only the
validation failures it raises itself; fleet answers every error with one envelope
(:func:`server.errors.error_body`) and raises more of them. :func:`document_errors` rewrites the
built document once, when the app is created, so that a client generated from it reads what the
server really sends:

- every error response carries the ``Error`` schema;
- ``400`` on each operation that takes parameters or a body, ``404`` on each with a path
  parameter (an unknown id), ``401``/``403`` on each behind a dispatcher token, with the bearer
  scheme it needs (Swagger UI's *Authorize* button);
- ``default``: the same envelope for any other status (``409``, ``422``, ``503``, ``500``);
- a body that rejects unknown fields (``forbid_unknown_fields``) says so
  (``additionalProperties: false``), and one the handler may go without (``data`` with a
  default) is not required;
- a handler that reads its body itself (an image) names its media types in its ``opt``
  (``raw_body=(…)``): the body is documented as binary in those types, required; one that
  checks its token itself (``opt`` ``bearer=True``) is documented as behind one.

It also holds the patterns of the query parameters that are text forms (a bbox, a position).
"""

from __future__ import annotations

import msgspec
from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.routes import HTTPRoute
from litestar.types import Empty

from server.auth import staff_only

# Query parameters in text forms, as OpenAPI documents them (the server also takes what
# float() takes: 1e-3, spaces, …).
_NUMBER = r"-?[0-9]+(\.[0-9]+)?"
BBOX_SCHEMA = {"pattern": rf"^{_NUMBER}(,{_NUMBER}){{3}}$"}  # min_lon,min_lat,max_lon,max_lat
LAT_LON_SCHEMA = {"pattern": rf"^{_NUMBER},{_NUMBER}$"}

ERROR_SCHEMA = "Error"
BEARER = "bearer"

_DETAILS = (OpenAPIType.OBJECT, OpenAPIType.ARRAY, OpenAPIType.NULL)
_ERROR = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["status", "code", "message", "details"],
            properties={
                "status": Schema(type=OpenAPIType.INTEGER, description="the HTTP status"),
                "code": Schema(
                    type=OpenAPIType.STRING,
                    description="stable, for programs: bad_request, validation_failed, "
                    "unauthorized, forbidden, not_found, method_not_allowed, conflict, "
                    "unprocessable, not_ready, internal_error, …",
                ),
                "message": Schema(type=OpenAPIType.STRING, description="for people"),
                "details": Schema(
                    one_of=[Schema(type=kind) for kind in _DETAILS],
                    description="what was wrong, when known (the field, for example)",
                ),
            },
        )
    },
    description="Every error answer of the API, whatever its status.",
)

_WHY = {
    "400": "Bad request: a parameter or the body is missing, malformed or out of range.",
    "401": "No dispatcher token (Authorization: Bearer …).",
    "403": "The token may not use the dispatcher API.",
    "404": "Nothing has that id.",
    "default": "Any other error (409 conflict, 422, 503 not ready, 500), in the same envelope.",
}


def _error_response(description: str) -> OpenAPIResponse:
    ref = Reference(ref=f"#/components/schemas/{ERROR_SCHEMA}")
    return OpenAPIResponse(
        description=description, content={"application/json": OpenAPIMediaType(schema=ref)}
    )


def document_errors(app: Litestar) -> OpenAPI:
    """Rewrite ``app``'s OpenAPI document (built now, and cached by Litestar) as above."""
    document = app.openapi_schema
    components = document.components
    if not isinstance(components, Components):  # pragma: no cover - Litestar always builds one
        raise TypeError("the OpenAPI document has no components")
    components.schemas = {**(components.schemas or {}), ERROR_SCHEMA: _ERROR}
    components.security_schemes = {
        **(components.security_schemes or {}),
        BEARER: SecurityScheme(
            type="http", scheme="bearer", description="a token from `fleet token create`"
        ),
    }
    strict = _strict_structs()
    for name, schema in (components.schemas or {}).items():
        if name in strict and isinstance(schema, Schema):
            schema.additional_properties = False
    paths = document.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        item = paths[route.path_format]
        for method, (handler, _) in route.route_handler_map.items():
            operation = getattr(item, method.lower(), None)
            if operation is None or not handler.resolve_include_in_schema():
                continue
            raw = handler.opt.get("raw_body")
            if raw:
                binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                operation.request_body = RequestBody(
                    content={media: OpenAPIMediaType(schema=binary) for media in raw},
                    required=True,
                )
            data = handler.parsed_fn_signature.parameters.get("data")
            body = operation.request_body
            if data is not None and data.default is not Empty and isinstance(body, RequestBody):
                body.required = False
            responses = operation.responses or {}
            codes = [code for code in responses if code[0] in "45"]
            parameters = operation.parameters or []
            if parameters or operation.request_body is not None:
                codes.append("400")
            if any(getattr(p, "param_in", None) == "path" for p in parameters):
                codes.append("404")
            if staff_only in handler.resolve_guards() or handler.opt.get("bearer"):
                codes += ["401", "403"]
                operation.security = [{BEARER: []}]
            for code in [*dict.fromkeys(codes), "default"]:
                description = _WHY.get(code) or getattr(responses.get(code), "description", "")
                responses[code] = _error_response(description or "An error.")
            operation.responses = responses
    return document


def _strict_structs() -> set[str]:
    """The names of the server's msgspec structs that reject unknown fields (Litestar names a
    struct's component after its class)."""
    names: set[str] = set()
    todo: list[type[msgspec.Struct]] = [msgspec.Struct]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        config = getattr(cls, "__struct_config__", None)
        if cls.__module__.startswith("server.") and config and config.forbid_unknown_fields:
            names.add(cls.__name__)
    return names
