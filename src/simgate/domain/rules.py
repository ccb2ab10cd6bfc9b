"""The marketplace's rules, as pure functions the storage layers and use cases share.

The SQL store expresses the same rules in queries for speed; the contract tests run the
in-memory store (which calls these functions directly) and the SQL stores through the same
cases, so the two cannot drift.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from simgate.domain.errors import DomainError, InvalidPrefix
from simgate.domain.model import (
    CountryAvailability,
    ExcludedCount,
    FinishPolicy,
    FinishStatus,
    GroupAvailability,
    GroupCount,
    Number,
    Operation,
    OperationKind,
    OperatorMap,
    Order,
    ServiceCounts,
)
from simgate.domain.types import (
    ANY_OPERATOR,
    EVERYWHERE,
    RENT_SERVICE,
    CountryName,
    OperatorName,
    PhoneNumber,
    ServiceName,
)

MAX_PREFIXES = 10_000
"""A bound on exceptionPhoneSet so one request cannot make the claim query unbounded."""


def normalise_name(raw: str) -> str:
    """Country, operator and service names compare case-insensitively ('RENT' == 'rent')."""
    if "\x00" in raw:
        # No name holds one, and PostgreSQL would refuse the query with a DataError.
        raise DomainError(f"name {raw!r} contains a NUL character")
    return raw.strip().lower()


def normalise_prefixes(raw: Sequence[int | str] | None) -> tuple[str, ...]:
    """exceptionPhoneSet arrives as integers (Onlinesim) or strings (SMSHUB): spec 8.3.

    Both become digit strings. Anything else is refused rather than ignored: silently
    dropping a prefix would issue a number the marketplace asked us not to.
    """
    if not raw:
        return ()
    if len(raw) > MAX_PREFIXES:
        raise InvalidPrefix(f"exceptionPhoneSet has {len(raw)} items; at most {MAX_PREFIXES}")
    prefixes: set[str] = set()
    for item in raw:
        if isinstance(item, bool):
            raise InvalidPrefix("exceptionPhoneSet items must be digits, not booleans")
        text = str(item).strip().lstrip("+") if isinstance(item, str) else str(item)
        if not text.isdigit() or not text.isascii():
            raise InvalidPrefix(f"exceptionPhoneSet item {item!r} is not a digit prefix")
        prefixes.add(text)
    # A shorter prefix covers every longer one that starts with it; keep the query small.
    # Linear in the digits (at most 15 per prefix), not quadratic in the count: 10,000
    # prefixes must not eat the 10-second deadline.
    kept: set[str] = set()
    for prefix in sorted(prefixes, key=len):
        if not any(prefix[:end] in kept for end in range(1, len(prefix))):
            kept.add(prefix)
    return tuple(sorted(kept))


def excluded_by_prefix(phone: PhoneNumber, prefixes: Iterable[str]) -> bool:
    return any(phone.startswith(prefix) for prefix in prefixes)


def is_free(number: Number) -> bool:
    """Issuable right now: enabled, its SIM online, and in no open operation (spec 8.1)."""
    return number.enabled and number.online and not number.busy


def matches_order(number: Number, order: Order, excluded_services: Iterable[ServiceName]) -> bool:
    """Whether `number` may be issued for `order`.

    `excluded_services` are the services this number was sold for (FINISH status 3) or
    blocked for; they bind activations only, because rent receives every sender (spec 6.2).
    """
    if not is_free(number) or number.country != order.country:
        return False
    if order.operator != ANY_OPERATOR and number.operator != order.operator:
        return False
    if excluded_by_prefix(number.phone, order.exception_prefixes):
        return False
    if order.kind is OperationKind.RENT:
        return number.rentable
    return order.service not in set(excluded_services)


def tally_availability(
    groups: Iterable[GroupCount],
    excluded: Iterable[ExcludedCount],
    services: Sequence[ServiceName],
    *,
    with_services: bool = True,
    with_rent: bool = False,
) -> list[CountryAvailability]:
    """Build GET_SERVICES' countryList from per-group tallies (spec 5.1 and 6.1); see tally_groups."""
    return tally_groups(
        join_excluded(groups, excluded), services, with_services=with_services, with_rent=with_rent
    )


def join_excluded(groups: Iterable[GroupCount], excluded: Iterable[ExcludedCount]) -> list[GroupAvailability]:
    """Each group with its exclusions per service beside it (repeated rows add up)."""
    minus: dict[tuple[CountryName, OperatorName], dict[ServiceName, int]] = defaultdict(dict)
    for row in excluded:
        by_service = minus[(row.country, row.operator)]
        by_service[row.service] = by_service.get(row.service, 0) + row.excluded
    return [
        GroupAvailability(
            g.country,
            g.operator,
            g.free,
            g.rentable,
            {s: n for s, n in minus.get((g.country, g.operator), {}).items() if n > 0},
        )
        for g in groups
    ]


def tally_groups(
    groups: Iterable[GroupAvailability],
    services: Sequence[ServiceName],
    *,
    with_services: bool = True,
    with_rent: bool = False,
) -> list[CountryAvailability]:
    """Build GET_SERVICES' countryList from per-group tallies (spec 5.1 and 6.1).

    Every offered service appears in every group, with an explicit 0 when nothing is free:
    a 0 can never be read as over-reporting, a missing key might be read as "unchanged".
    `any` is the sum over all operators, including numbers whose operator is unknown.
    """
    # No step per (group, service) in Python: dictionaries built and summed in C, the one
    # loop a comprehension over the exclusions (docs/benchmarks.md, "GET_SERVICES").
    services = list(dict.fromkeys(services))  # a repeated name must not count twice in `any`
    offered = frozenset(services)
    by_country: dict[CountryName, OperatorMap] = {}
    columns: dict[CountryName, list[list[int]]] = {}
    """Per country, each group's service counts in `services` order, for `any`."""
    rentable: dict[CountryName, int] = {}
    for group in sorted(groups, key=lambda g: (g.country, g.operator)):
        operator_map = by_country.setdefault(group.country, {ANY_OPERATOR: {}})
        counts: ServiceCounts = {}
        if with_services:
            full = group.free
            left = {s: full - n if full > n else 0 for s, n in group.excluded.items()}
            if not left.keys() <= offered:
                left = {s: n for s, n in left.items() if s in offered}
            counts = dict.fromkeys(services, full if full > 0 else 0)
            counts.update(left)  # keys already there: the order stays that of `services`
            columns.setdefault(group.country, []).append(list(counts.values()))
        if with_rent:
            counts[RENT_SERVICE] = group.rentable
        rentable[group.country] = rentable.get(group.country, 0) + group.rentable
        if group.operator not in ("", ANY_OPERATOR):
            operator_map[group.operator] = counts
    for country, operator_map in by_country.items():
        any_counts: ServiceCounts = {}
        if with_services:
            any_counts = dict(zip(services, map(sum, zip(*columns[country], strict=True)), strict=True))
        if with_rent:
            any_counts[RENT_SERVICE] = any_counts.get(RENT_SERVICE, 0) + rentable[country]
        operator_map[ANY_OPERATOR] = any_counts
    return [CountryAvailability(country, ops) for country, ops in by_country.items()]


def is_sale(operation: Operation, status: int) -> bool:
    """Only a FINISH status 3 on an activation uses up the number for that service (spec 5.1).

    Status 1, 4, 5 and undocumented values are 'not sold': the count stays as it was. Onlinesim
    reads status 1 as a rent/activation mix-up, not SMSHUB's "stop supplying", so it blocks
    nothing (spec open question 4).
    """
    return (
        status == FinishStatus.SOLD
        and operation.kind is OperationKind.ACTIVATION
        and operation.service is not None
    )


@dataclass(frozen=True, slots=True)
class FinishConsequence:
    """What a FINISH status takes off sale, decided from the status alone (before the
    operation is read, so PostgreSQL can do the whole FINISH in one call). It binds only an
    activation with a service: a rent receives every sender and uses up no service."""

    reason: str
    """The exclusion's reason: 'sold', 'refused' or 'retries'."""
    scope: str | None
    """The exclusion's marketplace: EVERYWHERE, or None for the operation's own."""
    retry_limit: int | None = None
    """Only once this many operations of (number, service) on that marketplace have finished
    with this status, this one included (None: at once)."""
    groups: bool = False
    """A sale: the other services of its exclusion groups too, everywhere (ledger.conflicting)."""


def finish_consequence(status: int, policy: FinishPolicy) -> FinishConsequence | None:
    """The sale ledger's consequence of a FINISH `status` under `policy`, or None."""
    if status == FinishStatus.SOLD:
        # Sold for this service on any marketplace: never counted or issued for it again,
        # anywhere; the account now exists (spec 5.1, multi-marketplace L1). Its exclusion
        # groups' other services too: their accounts conflict (HeroSMS §7.3, L5).
        return FinishConsequence("sold", EVERYWHERE, groups=True)
    if status in policy.refuse_statuses:
        # "Do not supply this number for this service again" (SMSHUB status 1), everywhere:
        # the likely reason, an earlier sale, holds on every marketplace (L7).
        return FinishConsequence("refused", EVERYWHERE)
    if status == policy.retry_budget_status:
        # At most `retry_budget` more offers after the first such outcome, on this
        # marketplace only (SMSHUB status 4, L6).
        return FinishConsequence("retries", None, retry_limit=1 + policy.retry_budget)
    return None


_DOCUMENTED_STATUSES = frozenset(s.value for s in FinishStatus)


def is_documented_status(status: int) -> bool:
    """1, 3, 4, 5 are documented; others (the legacy examples show 2) are accepted and logged."""
    return status in _DOCUMENTED_STATUSES
