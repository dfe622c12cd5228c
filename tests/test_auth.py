"""Access: the dispatcher API and console need a staff token; tokens come from the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from server import auth
from tests.conftest import AUTH, STAFF_TOKEN, run_cli, scaled


@pytest.mark.parametrize("path", ["/vehicles", "/geofences", "/vehicles/nearby?lat=1&lon=1"])
def test_the_dispatcher_api_needs_a_staff_token(live_server: str, path: str) -> None:
    missing = httpx.get(f"{live_server}{path}")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(f"{live_server}{path}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "forbidden"
    assert httpx.get(f"{live_server}{path}", headers=AUTH).status_code == 200


def test_a_driver_token_is_not_a_dispatcher_token(live_server: str) -> None:
    made = httpx.post(f"{live_server}/vehicles", headers=AUTH, json={"id": "van"})
    driver = made.json()["token"]
    answer = httpx.get(f"{live_server}/vehicles", headers={"Authorization": f"Bearer {driver}"})
    assert answer.status_code == 403


@pytest.mark.parametrize("query", ["", "?token=nope"])
async def test_the_console_needs_a_staff_token(live_server: str, query: str) -> None:
    url = live_server.replace("http://", "ws://") + f"/ws/console{query}"
    async with connect(url) as console:
        await asyncio.wait_for(console.wait_closed(), scaled(5))
    assert console.close_code == 4001
    ok = live_server.replace("http://", "ws://") + f"/ws/console?token={STAFF_TOKEN}"
    async with connect(ok) as console:
        assert (await asyncio.wait_for(console.recv(), scaled(5))) is not None


def test_fleet_token_create_prints_a_working_token(live_server: str, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "token",
            "create",
            "--role",
            "admin",
            "--label",
            "ops",
        ],
        env={**env, "FLEET_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=scaled(20),
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert len(token) >= 32
    answer = httpx.get(f"{live_server}/vehicles", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


async def test_a_revoked_token_is_refused_and_its_open_console_closed(
    server_factory: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "_CACHE_TTL_S", 0.3)  # how long a server may believe a token
    base = server_factory()
    admin = ("--redis-url", redis_url)
    code, token, said = run_cli("token", "create", "--label", "night shift", *admin)
    assert code == 0
    token, token_id = token.strip(), said.split()[2]
    code, listing, _ = run_cli("token", "list", *admin)
    assert code == 0
    assert any(line.startswith(token_id) and "night shift" in line for line in listing.splitlines())
    assert token not in listing  # a listing never shows a token itself
    staff = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/vehicles", headers=staff).status_code == 200
    url = base.replace("http://", "ws://") + f"/ws/console?token={token}"
    async with connect(url) as console:
        assert await asyncio.wait_for(console.recv(), scaled(5))
        code, out, _ = run_cli("token", "revoke", token_id[:8], *admin)
        assert code == 0
        assert "Revoked dispatcher token" in out
        await asyncio.wait_for(console.wait_closed(), scaled(5))
    assert console.close_code == 4001
    assert console.close_reason == "the token has been revoked"
    assert httpx.get(f"{base}/vehicles", headers=staff).status_code == 403
    for wanted, expected in (("abc", "is no token id"), (token_id, "No token has the id")):
        code, _, err = run_cli("token", "revoke", wanted, *admin)
        assert code == 2
        assert expected in err
    assert httpx.get(f"{base}/vehicles", headers=AUTH).status_code == 200  # others unaffected
