"""How the app is served: one uvicorn configuration, used by the CLI and by the tests."""

from __future__ import annotations

import uvicorn
from litestar import Litestar


def build_server(
    app: Litestar, *, log_level: str = "info", ws_max_size: int = 65536
) -> uvicorn.Server:
    """A uvicorn server for ``app``: the sans-I/O websockets protocol, frames of at most
    ``ws_max_size`` bytes (larger ones close the socket with 1009), a 5 s graceful stop."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        ws_max_size=ws_max_size,
        ws_per_message_deflate=False,  # small JSON frames: compression costs more than it saves
        lifespan="on",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)
