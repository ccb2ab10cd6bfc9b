"""The agent protocol's JSON shapes. Strict types: `"activationId":"5"` is refused, as the
marketplace's own acceptance tests refuse a string where a number belongs (spec 2)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

MAX_SUM = 1e12
"""Far above any real price, and it keeps hundredths inside a 64-bit column."""


class Request(msgspec.Struct, kw_only=True):
    """One Struct for the three calls; each call's required fields are checked by its handler,
    so a missing field gets a message naming it."""

    action: str | None = None
    key: str | None = None
    country: str | None = None
    operator: str | None = None
    service: str | None = None
    sum: Annotated[float, msgspec.Meta(ge=0, le=MAX_SUM)] | None = None
    currency: int | None = None
    """ISO 4217 numeric: 643 RUB, 840 USD (appendix 6)."""
    exceptionPhoneSet: list[int | str] | None = None
    """Strings in the spec's example, integers in Onlinesim's: both accepted (spec 5.2)."""
    activationId: Annotated[int, msgspec.Meta(ge=1)] | None = None
    status: int | None = None


decoder = msgspec.json.Decoder(Request)

SUCCESS: dict[str, Any] = {"status": "SUCCESS"}
NO_NUMBERS: dict[str, Any] = {"status": "NO_NUMBERS"}


def error(message: str) -> dict[str, Any]:
    """The only failure shape the protocol defines; `error` is required (spec 4)."""
    return {"status": "ERROR", "error": message}
