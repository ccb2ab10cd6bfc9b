"""Query parameters of the admin API: each parsed once, bad input named in a 400 (BadParam)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from simgate.domain.errors import DomainError
from simgate.domain.types import Timestamp

DAY = 86400
MAX_LIMIT = 500


class BadParam(DomainError):
    pass


def text(q: Mapping[str, str], name: str) -> str | None:
    value = q.get(name, "").strip()
    if len(value) > 200:
        raise BadParam(f"{name} is longer than 200 characters")
    if "\x00" in value:
        raise BadParam(f"{name} contains a NUL character")  # PostgreSQL would raise DataError
    return value or None


def integer(q: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = q.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise BadParam(f"{name} must be between {low} and {high}")
    return value


def optional_integer(q: Mapping[str, str], name: str) -> int | None:
    return integer(q, name, 0, 1, 2**62) if q.get(name, "").strip() else None


def epoch(q: Mapping[str, str], name: str) -> float | None:
    raw = q.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadParam(f"{name} must be seconds since the epoch, not {raw!r}") from None
    if not math.isfinite(value):
        raise BadParam(f"{name} must be a finite number")
    return value


def choice(q: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = text(q, name)
    if value is not None and value not in choices:
        raise BadParam(f"{name} must be one of {', '.join(choices)}")
    return value


def boolean(q: Mapping[str, str], name: str) -> bool | None:
    value = text(q, name)
    if value is None:
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise BadParam(f"{name} must be true or false")


def page(q: Mapping[str, str]) -> tuple[int, int]:
    return integer(q, "limit", 50, 1, MAX_LIMIT), integer(q, "offset", 0, 0, 2**31)


def tz(q: Mapping[str, str]) -> int:
    """Minutes east of UTC for 'today' and day boundaries (the browser sends its own)."""
    return integer(q, "tz", 0, -14 * 60, 14 * 60)


def day_starts(now: Timestamp, days: int, tz_minutes: int) -> list[Timestamp]:
    offset = tz_minutes * 60
    today = math.floor((now + offset) / DAY) * DAY - offset
    return [float(today - (days - 1 - i) * DAY) for i in range(days)]
