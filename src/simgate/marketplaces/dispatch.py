"""What every marketplace protocol shares, written once: the key check, money, orders,
and the calls into the use cases (DESIGN.md: "the action dispatch, prices, prefixes").

A protocol module decodes its wire shape, routes the action, and calls these; the use
cases decide, storage arbitrates between marketplaces.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache, partial

from simgate.domain import rules
from simgate.domain.model import CountryAvailability, FinishPolicy, Operation, OperationKind, Order
from simgate.domain.types import (
    ANY_OPERATOR,
    MAX_ID,
    CountryName,
    Kopecks,
    OperationId,
    OperatorName,
    ServiceName,
    Timestamp,
)
from simgate.services.answers import AnswerCache
from simgate.services.operations import (
    FinishOutcome,
    finish_operation,
    issue_number,
    list_available,
    record_poll,
)
from simgate.storage.ports import OutcomeUnknown, Store

ACTIONS = ("GET_SERVICES", "GET_NUMBER", "FINISH_ACTIVATION")

CURRENCIES = {643: "RUB", 840: "USD"}
"""ISO 4217 numeric codes the agent protocol sends (SMSHUB appendix 6)."""


class BadRequest(Exception):
    """A request the marketplace got wrong; rendered in its error envelope with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def authorised(expected: str, supplied: Sequence[str | None]) -> bool:
    """Any one supplied credential equals the key, compared in constant time."""
    want = expected.encode()
    return any(hmac.compare_digest(value.encode(), want) for value in supplied if value)


def action(raw: str | None) -> str:
    """The call a single-URL request asks for, or BadRequest naming what is wrong."""
    name = (raw or "").strip().upper()
    if name not in ACTIONS:
        raise BadRequest(f"unknown action {raw!r}" if name else "missing field action")
    return name


def currency(code: int | str | None) -> str:
    """ISO letters for `currency`: absent means RUB (Onlinesim sends none)."""
    if code is None:
        return "RUB"
    if isinstance(code, str):
        text = code.strip().upper()
        if text in CURRENCIES.values():
            return text
        code = int(text) if text.isdigit() and len(text) <= 4 else -1
    if isinstance(code, bool) or code not in CURRENCIES:
        known = ", ".join(f"{number} ({letters})" for number, letters in CURRENCIES.items())
        raise BadRequest(f"currency {code!r} is not one of {known}")
    return CURRENCIES[code]


def hundredths(amount: float | None) -> Kopecks | None:
    """Money in hundredths of its currency, rounded half up.

    The agent protocol quotes USD with 4 decimals; hundredths keep 2, so $0.0150 is stored
    as 2 cents (README, "Selling on SMSHUB"). Reports sum stored amounts, never floats.
    """
    if amount is None:
        return None
    return _hundredths(amount)


@lru_cache(maxsize=4096)
def _hundredths(amount: float) -> Kopecks:
    # Cached: a marketplace quotes few distinct prices, and the Decimal arithmetic was ~1 %
    # of a GET_NUMBER's CPU. A refusal raises, so it is never cached.
    try:
        return Kopecks(int((Decimal(str(amount)) * 100).quantize(Decimal(1), ROUND_HALF_UP)))
    except (InvalidOperation, ValueError) as problem:  # inf or nan slipped past the wire bounds
        raise BadRequest(f"sum {amount!r} is not an amount") from problem


def make_order(
    *,
    rent: bool,
    country: str | None,
    operator: str | None,
    service: str | None,
    prefixes: Sequence[int | str] | None,
    amount: float | None,
    currency_code: int | str | None = None,
) -> Order:
    """A GET_NUMBER in simgate's own names, normalised; BadRequest for a missing field."""
    if not country:
        raise BadRequest("missing field country")
    name = rules.normalise_name(service or "")
    if not rent and not name:
        raise BadRequest("missing field service")
    return Order(
        kind=OperationKind.RENT if rent else OperationKind.ACTIVATION,
        country=CountryName(rules.normalise_name(country)),
        operator=OperatorName(rules.normalise_name(operator or "") or ANY_OPERATOR),
        service=None if rent else ServiceName(name),
        exception_prefixes=rules.normalise_prefixes(prefixes),
        offered=hundredths(amount),
        currency=currency(currency_code),
    )


def operation_id(raw: int | None) -> OperationId:
    if raw is None:
        raise BadRequest("missing field activationId")
    # msgspec decodes integers beyond 64 bits without applying the schema's bounds; the
    # database cannot hold them, so they are refused here rather than failing there.
    if not 1 <= raw <= MAX_ID:
        raise BadRequest(f"activationId must be 1 to {MAX_ID}")
    return OperationId(raw)


def finish_status(raw: int | None) -> int:
    if raw is None:
        raise BadRequest("missing field status")
    if not -(2**31) <= raw < 2**31:
        raise BadRequest("status is out of range")
    return raw


async def available(
    store: Store,
    marketplace: str,
    services: Sequence[ServiceName],
    clock: Callable[[], Timestamp],
    *,
    with_services: bool = True,
    with_rent: bool = False,
    cache: AnswerCache | None = None,
) -> list[CountryAvailability]:
    """GET_SERVICES: the counts, then the poll recorded (lanes move SIMs only after the
    marketplace was answered without them). `asked_at` is read before the snapshot, so it
    never claims the answer is newer than it is; a kept answer (`cache`) is given only when
    this snapshot's counts are the ones it was computed from, so it is as new."""
    asked_at = clock()
    work = partial(
        list_available,
        marketplace=marketplace,
        services=services,
        with_services=with_services,
        with_rent=with_rent,
        now=asked_at,
        cache=cache,
    )
    countries = await store.read(work)
    await store.transact(lambda uow: record_poll(uow, marketplace, asked_at))
    return countries


ISSUE_OUTCOME_UNKNOWN = (
    "database connection lost during commit: a number may or may not have been issued for this"
    " order; ask again (that may issue another number: one issued here and never answered"
    " stays busy until a FINISH for it)"
)
"""GET_NUMBER is not idempotent (no order id to recognise a repeat by): the marketplace is told
that its retry is a new order. The number of an unanswered issue stays busy, as for an answer
that came too late (README, "Decisions"): simgate never closes an operation itself."""
FINISH_OUTCOME_UNKNOWN = (
    "database connection lost during commit: this FINISH may or may not have been recorded;"
    " send it again (a repeat is answered as the first and changes nothing)"
)


async def issue(
    store: Store, marketplace: str, order: Order, clock: Callable[[], Timestamp]
) -> Operation | None:
    now = clock()
    try:
        return await store.transact(lambda uow: issue_number(uow, marketplace, order, now), single=True)
    except OutcomeUnknown as lost:
        raise lost.telling(ISSUE_OUTCOME_UNKNOWN) from lost.__cause__


async def finish(
    store: Store,
    marketplace: str,
    activation: OperationId,
    status: int,
    final: Kopecks | None,
    clock: Callable[[], Timestamp],
    policy: FinishPolicy,
) -> FinishOutcome:
    now = clock()
    try:
        return await store.transact(
            lambda uow: finish_operation(uow, marketplace, activation, status, final, now, policy),
            single=True,
        )
    except OutcomeUnknown as lost:  # FINISH is idempotent: the resend settles it
        raise lost.telling(FINISH_OUTCOME_UNKNOWN) from lost.__cause__
