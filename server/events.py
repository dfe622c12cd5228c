"""Events for consoles: published on ``fleet:events`` and kept in a capped log stream."""

from __future__ import annotations

import json
from typing import Any

from server import keys

LOG_LENGTH = 10_000


def queue_event(pipe: Any, event: dict[str, Any], *, log: str = keys.EVENTS_LOG) -> None:
    """Add to a Redis pipeline: publish ``event`` and append it to the stream ``log``."""
    payload = json.dumps(event)
    pipe.publish(keys.EVENTS_CHANNEL, payload)
    pipe.xadd(log, {"e": payload}, maxlen=LOG_LENGTH, approximate=True)
