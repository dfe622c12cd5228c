"""The app over real HTTP, against a real Redis."""

from __future__ import annotations

import logging
import re

import httpx

from server.app import create_app
from server.settings import Settings
from tests.conftest import AUTH


def test_health_and_ready(live_server: str) -> None:
    health = httpx.get(f"{live_server}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = httpx.get(f"{live_server}/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"roads": "not loaded", "redis": "ok"}}


def test_errors_have_one_json_shape(live_server: str) -> None:
    missing = httpx.get(f"{live_server}/no/such/path")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"status": 404, "code": "not_found", "message": "Not Found", "details": None}
    }
    wrong_method = httpx.post(f"{live_server}/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    allowed = {m.strip() for m in wrong_method.headers["allow"].split(",")}  # in any order
    assert allowed == {"GET", "OPTIONS"}  # RFC 9110: a 405 says what is


def test_openapi_is_served(live_server: str) -> None:
    schema = httpx.get(f"{live_server}/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/health", "/ready"} <= set(paths)


def test_openapi_documents_the_errors_and_sign_in_the_server_really_answers(
    live_server: str,
) -> None:
    document = httpx.get(f"{live_server}/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    error = schemas["Error"]
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        for code, response in responses.items():
            if code == "default" or code[0] in "45":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (method, path, code)
        assert "default" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
    orders = operations[("GET", "/orders/{order_id}")]
    assert {"400", "401", "403", "404"} <= set(orders["responses"])
    assert orders["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "security" not in operations[("GET", "/health")]
    assert "401" not in operations[("GET", "/osmand")]["responses"]
    # A repeated Idempotency-Key answers 200; a cancel may come without a body.
    created = operations[("POST", "/orders")]["responses"]
    assert created["200"]["content"] == created["201"]["content"]
    assert operations[("POST", "/orders/{order_id}/cancel")]["requestBody"]["required"] is False
    assert operations[("POST", "/orders")]["requestBody"]["required"] is True
    # Bodies that reject unknown fields say so; the text forms have their patterns.
    assert schemas["OrderIn"]["additionalProperties"] is False
    assert schemas["Place"]["additionalProperties"] is False
    bbox = next(p for p in operations[("GET", "/vehicles")]["parameters"] if p["name"] == "bbox")
    assert re.fullmatch(bbox["schema"]["pattern"].strip("^$"), "24.9,60.1,-25.0,60.25")
    # What the server sends for each documented error has the documented shape.
    answers = [
        httpx.get(f"{live_server}/orders/none"),  # 401
        httpx.get(f"{live_server}/orders/none", headers={"Authorization": "Bearer wrong"}),
        httpx.get(f"{live_server}/orders/none", headers=AUTH),  # 404
        httpx.get(f"{live_server}/vehicles", headers=AUTH, params={"bbox": "1,2"}),  # 400
        httpx.get(f"{live_server}/vehicles/nearby", headers=AUTH, params={"lat": 95, "lon": 0}),
    ]
    assert [a.status_code for a in answers] == [401, 403, 404, 400, 400]
    inner = error["properties"]["error"]
    for answer in answers:
        body = answer.json()
        assert set(body) == set(error["required"])
        assert set(body["error"]) == set(inner["required"]) == set(inner["properties"])
        assert body["error"]["status"] == answer.status_code


def test_ready_is_503_when_redis_is_gone(redis_url: str) -> None:
    """Point the app at a port where nothing listens: /ready must say so, not crash."""
    from litestar.testing import TestClient

    from server.redis_process import free_port

    app = create_app(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5))
    with TestClient(app) as client:
        answer = client.get("/ready")
        # Any call that needs Redis answers the same 503 (retry), not a 500 (a bug).
        api = client.get("/vehicles", headers={"Authorization": "Bearer any"})
        osmand = client.get("/osmand", params={"id": "van", "lat": 60.17, "lon": 24.94})
    assert answer.status_code == 503
    body = answer.json()["error"]
    assert body["code"] == "not_ready"
    assert body["details"] == {"redis": "unreachable"}
    for outage in (api, osmand):
        assert outage.status_code == 503, outage.text
        assert outage.json()["error"]["code"] == "not_ready"
        assert outage.json()["error"]["details"] == {"redis": "unreachable"}
        assert outage.headers["retry-after"] == "5"


async def test_tokens_in_urls_stay_out_of_the_server_log(live_server: str) -> None:
    """Browsers put socket tokens in the URL; uvicorn logs each WebSocket's and request's path
    with its query at INFO. The log keeps the path and drops the token."""
    from websockets.asyncio.client import connect

    from tests.conftest import STAFF_TOKEN

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep = Keep()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(keep)
    try:
        ws = live_server.replace("http", "ws", 1)
        async with connect(f"{ws}/ws/console?token={STAFF_TOKEN}&bbox=24,60,25,61"):
            pass
        async with httpx.AsyncClient() as client:
            for path in ("/t/customer-secret-1", "/track/customer-secret-2"):
                await client.get(f"{live_server}{path}")
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(keep)
            logger.setLevel(level)
    text = "\n".join(lines)
    assert "/ws/console?token=…&bbox=24,60,25,61" in text, text  # logged, token cut
    assert "/t/…" in text, text
    assert "/track/…" in text, text
    for secret in (STAFF_TOKEN, "customer-secret-1", "customer-secret-2"):
        assert secret not in text
