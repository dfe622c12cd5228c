"""The app over real HTTP, against a real Redis."""

from __future__ import annotations

import httpx

from server.app import create_app
from server.settings import Settings


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


def test_openapi_is_served(live_server: str) -> None:
    schema = httpx.get(f"{live_server}/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/health", "/ready"} <= set(paths)


def test_ready_is_503_when_redis_is_gone(redis_url: str) -> None:
    """Point the app at a port where nothing listens: /ready must say so, not crash."""
    from litestar.testing import TestClient

    from server.redis_process import free_port

    app = create_app(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5))
    with TestClient(app) as client:
        answer = client.get("/ready")
    assert answer.status_code == 503
    body = answer.json()["error"]
    assert body["code"] == "not_ready"
    assert body["details"] == {"redis": "unreachable"}
