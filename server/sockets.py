"""Small helpers shared by the WebSocket endpoints."""

from __future__ import annotations

from typing import Any, cast

from litestar import WebSocket


async def receive_frame(socket: WebSocket[Any, Any, Any]) -> str | bytes | None:
    """The next text or binary frame, or ``None`` once the client has gone."""
    event = await socket.receive()
    if event["type"] == "websocket.disconnect":
        return None
    text = cast("str | None", event.get("text"))
    data = cast("bytes | None", event.get("bytes"))
    return text if text is not None else data or b""
