"""Working hours: a vehicle's daily shift, as clock times in the fleet's time zone.

A shift is ``start`` to ``end`` every day, local time; one that ends at or before its start runs
overnight (22:00 to 06:00). :func:`current_or_next` finds the shift in progress at a moment, or the
next one, as two instants in UTC (aware datetimes in one zone subtract as wall clocks do:
across a daylight-saving change, an hour off). Daylight-saving nights are as long as the clocks
say: a 02:00 to 05:00 shift on the night the clocks go forward lasts two hours.

>>> helsinki = ZoneInfo("Europe/Helsinki")
>>> noon = dt.datetime(2026, 11, 30, 12, 0, tzinfo=helsinki)
>>> start, end = current_or_next(noon, dt.time(8), dt.time(16, 30), helsinki)
>>> start, end = start.astimezone(helsinki), end.astimezone(helsinki)
>>> (start.hour, end.hour, end.minute, start <= noon < end)
(8, 16, 30, True)
>>> start, end = current_or_next(noon, dt.time(22), dt.time(6), helsinki)  # tonight's
>>> start, end = start.astimezone(helsinki), end.astimezone(helsinki)
>>> (start.day, start.hour, end.day, end.hour)
(30, 22, 1, 6)
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dispatch.errors import ProblemError


def parse_clock(text: str) -> dt.time:
    """``"HH:MM"`` as a time of day.

    >>> parse_clock("07:45")
    datetime.time(7, 45)
    """
    try:
        hours, minutes = text.split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise ProblemError(f"{text!r} is not a time of day HH:MM") from None


def current_or_next(
    now: dt.datetime, start: dt.time, end: dt.time, zone: ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    """The shift in progress at ``now`` (an aware datetime), or the next one to begin."""
    if start == end:
        raise ProblemError("a shift must not start when it ends")
    today = now.astimezone(zone).date()
    for day in (today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)):
        begins = dt.datetime.combine(day, start, tzinfo=zone).astimezone(dt.UTC)
        ends = dt.datetime.combine(
            day + dt.timedelta(days=end <= start), end, tzinfo=zone
        ).astimezone(dt.UTC)
        if ends > now:
            return begins, ends
    raise AssertionError("tomorrow's shift ends after now")  # pragma: no cover


def on_shift(now: dt.datetime, start: dt.time, end: dt.time, zone: ZoneInfo) -> float | None:
    """Seconds left of the shift in progress at ``now``; None between shifts."""
    begins, ends = current_or_next(now, start, end, zone)
    return (ends - now).total_seconds() if begins <= now else None
