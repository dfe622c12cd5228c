"""Request bodies read whole with a limit (CSV imports, proof images): a body known to pass it
is refused before it is read, and reading stops as soon as it does."""

from __future__ import annotations

from typing import Any

from litestar import Request

from server.errors import TooLarge


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The request's body, or 413 as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is {declared} bytes; at most {limit} are taken")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"the body passes {limit} bytes, the most taken")
    return bytes(body)
