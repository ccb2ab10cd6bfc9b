"""Query parameters of the admin API: each parsed once, bad input named in a 400 (BadParam)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_to_bytes

from simgate.domain.errors import DomainError
from simgate.domain.types import Timestamp

DAY = 86400
MAX_LIMIT = 500
SHOWN = 32


class BadParam(DomainError):
    pass


def check_query(raw: bytes, items: Iterable[tuple[str, str]]) -> None:
    """The query string as a whole: percent-escapes that decode to UTF-8, each name once.

    Undecodable escapes became U+FFFD and a search for text nobody sent; a repeated name
    (`state=open&state=finished`) kept its last value, an answer to another question than
    the caller asked.
    """
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadParam("the query string's percent-escapes are not UTF-8") from None
    repeated = sorted(name for name, count in Counter(name for name, _ in items).items() if count > 1)
    if repeated:
        raise BadParam(f"{', '.join(repeated)} given more than once")


def _plain(raw: str) -> str:
    """`raw` if it is a number as people write it. int() and float() also read fullwidth and
    Arabic-Indic digits and '1_0', which no caller means."""
    if not raw.isascii() or "_" in raw:
        raise ValueError(raw)
    return raw


def _shown(raw: str) -> str:
    return raw if len(raw) <= SHOWN else raw[:SHOWN] + "…"


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
        value = int(_plain(raw))
    except ValueError:
        raise BadParam(f"{name} must be an integer, not {_shown(raw)!r}") from None
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
        value = float(_plain(raw))
    except ValueError:
        raise BadParam(f"{name} must be seconds since the epoch, not {_shown(raw)!r}") from None
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
