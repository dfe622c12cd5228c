"""The one Redis key schema of fleet. Every key and channel name is built here.

===================================  ======  ==================================================
key                                  type    what it holds
===================================  ======  ==================================================
``fleet:v:{id}``                     hash    live state: lat lon ts speed heading accuracy cell
``fleet:track:{id}``                 stream  in-order pings, one entry per batch: entry ID
                                             ``<ts ms of its first ping>-<n>``, field ``b`` =
                                             pings ``ts,lat,lon,speed,heading,accuracy``
                                             joined by ``;`` (entries of one ping with field
                                             ``p`` = ``lat,lon,…`` and the ts in the ID, as
                                             written before, are still read); trimmed to the
                                             retention (``MINID``)
``fleet:late:{id}``                  zset    pings that arrived after a newer one: score = ts,
                                             member = ``ts,lat,lon,speed,heading,accuracy``
``fleet:cell:{res}:{cell}``          set     ids of the vehicles whose live position is in
                                             the H3 cell (each vehicle in exactly one)
``fleet:lastseen``                   zset    vehicle id → ts of its newest ping
``fleet:vehicles``                   hash    vehicle id → JSON record (name, device id, …)
``fleet:device:{device_id}``         string  vehicle id of an OsmAnd/Traccar device id
``fleet:vtoken:{sha256}``            string  vehicle id of a driver token (stored hashed)
``fleet:vtokens``                    hash    vehicle id → sha256 of its current driver token
``fleet:token:{sha256}``             hash    a staff token: role, label, created
``fleet:stats:rejects``              hash    rejection reason → count
``fleet:stats:pings``                hash    ``accepted``, ``duplicates`` → pings counted so far
``fleet:status``                     hash    vehicle id → online | stale | offline
``fleet:lease:status``               string  which process sweeps statuses (expires)
``fleet:events:log``                 stream  recent events, capped at ~10,000
``fleet:order:{id}``                 hash    an order: doc (JSON), pii (sealed), tracking (sealed),
                                             status, vehicle_id, nodes (JSON), created, alerted,
                                             promised_eta (ms, set when confirmed)
``fleet:orders``                     zset    order id → created ms
``fleet:orders:{status}``            set     ids of the orders in that status
``fleet:audit:{order id}``           stream  the order's transitions: status previous by reason at
``fleet:alerts``                     stream  recent alerts (node breaches, …), capped at ~10,000
``fleet:stats:alerts``               hash    alert (``processing``, ``departure``, ``lead_time``,
                                             ``error_rate``) → how many were raised
``fleet:outcomes:{YYYYMMDD}``        hash    drop-off attempts of a UTC day by 10-minute slot:
                                             ``{slot}:delivered|failed`` → count; kept 8 days
``fleet:alerted:error_rate``         string  when the error-rate alert was raised (ms), while the
                                             rate stays above the limit
``fleet:lease:alerts``               string  which process checks the node limits (expires)
``fleet:route:{vehicle id}``         string  JSON: the vehicle's route (version, stops, ETAs)
``fleet:lease:planner``              string  which process plans (expires)
``fleet:lease:etas``                 string  which process refreshes ETAs (expires)
``fleet:lease:archive``              string  which process archives ended orders (expires)
``fleet:stats:failures``             hash    failed-delivery reason → count
``fleet:traffic``                    hash    traffic event id → JSON (the API body, created)
``fleet:proofs:{order id}``          hash    proof of delivery: proof id → the image, sealed
                                             (bytes: nonce ‖ AES-GCM ciphertext)
``fleet:proofmeta:{order id}``       hash    proof id → JSON: id kind content_type bytes sha256
                                             at by
``fleet:ttoken:{sha256}``            string  order id of a customer tracking token
``fleet:idem:{key}``                 string  order id created under an Idempotency-Key (24 h)
``fleet:pins``                       hash    order id → the vehicle a dispatcher assigned it to
``fleet:geofences``                  hash    fence id → JSON (polygon, name, dwell)
``fleet:infence:{id}``               string  JSON: fence id → [entered at ms, dwell reported]
``fleet:webhooks``                   hash    webhook id → JSON (url, events, sealed secret)
``fleet:webhook:{id}``               hash    its delivery: cursor failures last_error
                                             last_success_at
``fleet:lease:webhooks``             string  which process delivers webhooks (expires)
===================================  ======  ==================================================

Channels: ``fleet:pos`` (JSON of a vehicle's new live position), ``fleet:events`` (status and
geofence events).

The ingest script (``lua/ingest.lua``) moves a vehicle between ``fleet:cell:*`` sets by names it
builds itself, so it is not Redis-Cluster-safe yet; every other multi-key write is.
"""

from __future__ import annotations

PREFIX = "fleet:"
POSITIONS_CHANNEL = PREFIX + "pos"
EVENTS_CHANNEL = PREFIX + "events"
LASTSEEN = PREFIX + "lastseen"
VEHICLES = PREFIX + "vehicles"
VEHICLE_TOKENS = PREFIX + "vtokens"
REJECTS = PREFIX + "stats:rejects"
PING_COUNTS = PREFIX + "stats:pings"
STATUS = PREFIX + "status"
STATUS_LEASE = PREFIX + "lease:status"
EVENTS_LOG = PREFIX + "events:log"
GEOFENCES = PREFIX + "geofences"
ORDERS = PREFIX + "orders"
ALERTS = PREFIX + "alerts"
ALERTS_LEASE = PREFIX + "lease:alerts"
ALERT_COUNTS = PREFIX + "stats:alerts"
ERROR_RATE_ALERTED = PREFIX + "alerted:error_rate"
PLANNER_LEASE = PREFIX + "lease:planner"
ETAS_LEASE = PREFIX + "lease:etas"
ARCHIVE_LEASE = PREFIX + "lease:archive"
TRAFFIC = PREFIX + "traffic"
FAILURES = PREFIX + "stats:failures"
ORDER_PINS = PREFIX + "pins"
WEBHOOKS = PREFIX + "webhooks"
WEBHOOKS_LEASE = PREFIX + "lease:webhooks"
PACE = PREFIX + "pace"  # the learned pace factor (string float), written by the ETA refresher
PACE_AREAS = PREFIX + "pace:areas"  # hash: H3 cell → that area's learned pace (string float)


def live(vehicle_id: str) -> str:
    return f"{PREFIX}v:{vehicle_id}"


def track(vehicle_id: str) -> str:
    return f"{PREFIX}track:{vehicle_id}"


def late(vehicle_id: str) -> str:
    return f"{PREFIX}late:{vehicle_id}"


def cell_prefix(resolution: int) -> str:
    return f"{PREFIX}cell:{resolution}:"


def cell(resolution: int, cell_id: str) -> str:
    return cell_prefix(resolution) + cell_id


def device(device_id: str) -> str:
    return f"{PREFIX}device:{device_id}"


def vehicle_token(token_hash: str) -> str:
    return f"{PREFIX}vtoken:{token_hash}"


def in_fences(vehicle_id: str) -> str:
    return f"{PREFIX}infence:{vehicle_id}"


def staff_token(token_hash: str) -> str:
    return f"{PREFIX}token:{token_hash}"


def order(order_id: str) -> str:
    return f"{PREFIX}order:{order_id}"


def orders_in(status: str) -> str:
    return f"{PREFIX}orders:{status}"


def order_audit(order_id: str) -> str:
    return f"{PREFIX}audit:{order_id}"


def order_proofs(order_id: str) -> str:
    return f"{PREFIX}proofs:{order_id}"


def order_proof_meta(order_id: str) -> str:
    return f"{PREFIX}proofmeta:{order_id}"


def tracking_token(token_hash: str) -> str:
    return f"{PREFIX}ttoken:{token_hash}"


def idempotency(key: str) -> str:
    return f"{PREFIX}idem:{key}"


def outcomes(day: str) -> str:
    """Drop-off attempts of a UTC day (``YYYYMMDD``), see ``server.orders.outcomes``."""
    return f"{PREFIX}outcomes:{day}"


def webhook_state(webhook_id: str) -> str:
    return f"{PREFIX}webhook:{webhook_id}"


def route(vehicle_id: str) -> str:
    return f"{PREFIX}route:{vehicle_id}"
