"""The driver WebSocket protocol (``/ws/driver``), as msgspec types. See ``docs/PROTOCOL.md``.

Driver → server (JSON text frames)::

    {"type": "pings", "seq": 17, "pings": [{"lat": 60.17, "lon": 24.94, "ts": 1764000000000,
                                             "speed": 8.3, "heading": 92, "accuracy": 5}]}

``ts`` is Unix time in milliseconds, ``speed`` m/s, ``heading`` degrees clockwise from north,
``accuracy`` metres. ``seq`` is the client's sequence number, echoed in the ack.

Server → driver: ``ack`` (after the pings are in Redis), ``error``, ``route`` (the vehicle's
current route, versioned; filled by the dispatch service).

Types are checked here (a string where a number belongs is an error for the whole message);
value ranges are checked per ping by :mod:`server.tracking.filters`, so one bad fix is rejected
and acked without holding back the good ones.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Ping(msgspec.Struct, frozen=True):
    lat: float
    lon: float
    ts: int
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None


class PingBatch(msgspec.Struct, tag="pings", tag_field="type", frozen=True):
    seq: int
    pings: list[Ping]


StopKind = Literal["arrived", "picked_up", "delivered", "failed", "returned"]
FailureReason = Literal["customer_absent", "refused", "address_wrong", "other"]


class StopEvent(msgspec.Struct, tag="stop", tag_field="type", frozen=True):
    """The driver reports what happened at a stop of one of its orders."""

    seq: int
    order_id: str
    event: StopKind
    reason: FailureReason | None = None  # required with ``failed``
    proof: str | None = None  # a proof-of-delivery reference (photo id, signature id)


class StopAck(msgspec.Struct, tag="stop_ack", tag_field="type", omit_defaults=True):
    seq: int
    order_id: str
    status: str
    held: str = ""  # after a failure: the reason the order now waits for a dispatcher


ClientMessage = PingBatch | StopEvent


class Rejection(msgspec.Struct):
    i: int
    reason: str


class Ack(msgspec.Struct, tag="ack", tag_field="type"):
    seq: int
    accepted: int
    duplicates: int
    rejected: list[Rejection]


class RouteStop(msgspec.Struct):
    """A stop of a route. ``kind``: ``pickup``, ``dropoff``, ``return`` (the parcel back to
    where it came from) or ``transfer`` (the parcel collected from ``from_vehicle``, a van out
    of service that has it; only transfers carry ``from_vehicle``)."""

    order_id: str
    kind: str
    lat: float
    lon: float
    eta: int  # Unix ms
    late_s: int = 0
    from_vehicle: str | msgspec.UnsetType = msgspec.UNSET


class RouteEnd(msgspec.Struct):
    """Where the route ends (the vehicle's depot) and when the vehicle is expected back."""

    lat: float
    lon: float
    eta: int  # Unix ms


class Route(msgspec.Struct, tag="route", tag_field="type"):
    """The vehicle's current route; ``version`` grows by one with every change of its stops.
    ``geometry``: the road path from where the vehicle was when it was planned through every
    stop (and back to its depot), a Google encoded polyline (precision 6). ``end``: the
    vehicle's depot and when it is back there, for a vehicle with one."""

    vehicle_id: str
    version: int
    planned_at: int  # Unix ms
    stops: list[RouteStop]
    geometry: str = ""
    end: RouteEnd | None = None


class Error(msgspec.Struct, tag="error", tag_field="type"):
    code: str
    message: str
    seq: int | None = None


class WireError(ValueError):
    """A client frame that cannot be decoded; ``code`` is the documented error code."""

    def __init__(self, code: str, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq


_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_encoder = msgspec.json.Encoder()


def decode_client(frame: str | bytes, *, max_batch: int) -> ClientMessage:
    """Decode one client frame or raise :class:`WireError` (``invalid_json``,
    ``invalid_message``, ``empty_batch``, ``batch_too_large``)."""
    try:
        message = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise WireError("invalid_message", str(exc), peek_seq(frame)) from None
    except msgspec.DecodeError as exc:
        raise WireError("invalid_json", f"not valid JSON: {exc}") from None
    if isinstance(message, StopEvent):
        if message.event == "failed" and message.reason is None:
            raise WireError("invalid_message", "a failed stop needs a reason", message.seq)
        return message
    if not message.pings:
        raise WireError("empty_batch", "a batch holds at least one ping", message.seq)
    if len(message.pings) > max_batch:
        raise WireError(
            "batch_too_large",
            f"a batch holds at most {max_batch} pings, this one has {len(message.pings)}",
            message.seq,
        )
    return message


def peek_seq(frame: str | bytes) -> int | None:
    """The ``seq`` of a frame that failed validation, when it can be read, for the error."""
    try:
        raw: Any = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return None
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def encode(message: Ack | StopAck | Error | Route) -> bytes:
    return _encoder.encode(message)


def error_frame(code: str, message: str, seq: int | None = None) -> bytes:
    return encode(Error(code=code, message=message, seq=seq))
