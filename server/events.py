"""Events for consoles: published on ``fleet:events`` and kept in a capped log stream."""

from __future__ import annotations

import json
from typing import Any

from server import keys

LOG_LENGTH = 10_000


def queue_event(pipe: Any, event: dict[str, Any], *, also_log: str | None = None) -> None:
    """Add to a Redis pipeline: publish ``event`` and append it to ``fleet:events:log`` (what
    webhooks deliver from), and to the stream ``also_log`` too if given."""
    payload = json.dumps(event)
    pipe.publish(keys.EVENTS_CHANNEL, payload)
    for log in (keys.EVENTS_LOG, also_log) if also_log else (keys.EVENTS_LOG,):
        pipe.xadd(log, {"e": payload}, maxlen=LOG_LENGTH, approximate=True)
