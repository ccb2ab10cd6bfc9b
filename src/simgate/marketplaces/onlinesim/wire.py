"""Onlinesim's JSON shapes. Tolerant reader, strict writer (DESIGN.md, protocol habits).

One request Struct serves every call: each call's required fields are checked by its
handler, so a missing field gets a message naming it. Types are strict (msgspec): "40" is
not a number and 3.5 is not an activationId.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_SUM = 1e12
"""RUB; far above any real price, and it keeps kopecks inside a 64-bit column."""


class Request(msgspec.Struct, kw_only=True):
    action: str | None = None
    key: str | None = None
    country: str | None = None
    operator: str | None = None
    service: str | None = None
    sum: Annotated[float, msgspec.Meta(ge=0, le=MAX_SUM)] | None = None
    currency: int | str | None = None
    """SMSHUB sends ISO-4217 numeric (643 = RUB); Onlinesim sends none and means RUB."""
    exceptionPhoneSet: list[int | str] | None = None
    activationId: Annotated[int, msgspec.Meta(ge=1)] | None = None
    status: int | None = None


decoder = msgspec.json.Decoder(Request)

SUCCESS = {"status": "SUCCESS"}
NO_NUMBERS = {"status": "NO_NUMBERS"}


def error(message: str) -> dict[str, str]:
    return {"status": "ERROR", "error": message}
