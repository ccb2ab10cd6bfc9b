"""The sale ledger's rules beyond one operation: resale windows and exclusion groups.

HeroSMS fines a number sold there and then sold elsewhere within two months, and a number
sold elsewhere in the two months before it is offered there (herosms.md §7.2, fines up to a
permanent ban); it also forbids selling one number for services whose real-world accounts
conflict (§7.3, WhatsApp and AstroPay). Both are DATA: a marketplace's terms are one
ResaleRule (its plug-in supplies it), the conflicting services one ExclusionGroup (TOML
`[[exclusion_groups]]`), so a later marketplace with its own terms costs one entry, no branch.

Pure: storage asks `window_clauses` what to filter in SQL (and the in-memory store asks
`resale_hold` directly); the contract tests hold the two together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from simgate.domain.model import FinishStatus, Operation, OperationKind
from simgate.domain.types import CountryName, OperationId, ServiceName, Timestamp

DAY = 86_400.0


class ResaleScope(StrEnum):
    NUMBER = "number"
    """A sale binds the whole number, whatever service it was for (the literal reading)."""
    SERVICE = "service"
    """A sale binds only (number, service); a rent, which receives every sender, binds all."""


@dataclass(frozen=True, slots=True)
class ResaleRule:
    """One marketplace's anti-resale terms (multi-marketplace.md §5, L2 and L3)."""

    marketplace: str
    window_seconds: float
    scope: ResaleScope = ResaleScope.NUMBER
    outbound: bool = True
    """A sale on `marketplace` hides the number on every other marketplace for the window."""
    inbound: bool = True
    """A sale on any other marketplace hides the number from `marketplace` for the window."""


@dataclass(frozen=True, slots=True)
class ExclusionGroup:
    """Services whose accounts conflict: a sale for one hides the others, everywhere, forever."""

    name: str
    services: frozenset[ServiceName]
    countries: frozenset[CountryName] = frozenset()
    """Only numbers of these countries (empty: every country): Uber and YandexGo conflict in
    Kazakhstan, where both run."""

    def binds(self, country: CountryName) -> bool:
        return not self.countries or country in self.countries


def _group(name: str, services: Iterable[str], countries: Iterable[str] = ()) -> ExclusionGroup:
    return ExclusionGroup(
        name, frozenset(ServiceName(s) for s in services), frozenset(CountryName(c) for c in countries)
    )


HEROSMS_GROUPS = (
    _group("whatsapp+astropay", ["whatsapp", "astropay"]),
    _group("uber+yandexgo", ["uber", "yandexgo"], ["kazakhstan"]),
    _group("novaposhta+viber", ["novaposhta", "viber"], ["ukraine", "poland"]),
    _group("whatsapp+whatsappbusiness", ["whatsapp", "whatsappbusiness"], ["netherlands"]),
)
"""The conflicts HeroSMS's partner terms name (herosms.md §7.3), in simgate's catalogue names:
the groups simgate ships (settings default to them; the simulator expects them)."""


@dataclass(frozen=True, slots=True)
class LedgerRules:
    resale: tuple[ResaleRule, ...] = ()
    groups: tuple[ExclusionGroup, ...] = ()


NO_RULES = LedgerRules()


@dataclass(frozen=True, slots=True)
class Sale:
    """One line of the ledger: a FINISH status 3 (activation or rent)."""

    operation_id: OperationId
    marketplace: str
    service: ServiceName | None
    """None: a rent, which used the number for every service."""
    sold_at: Timestamp


def sales_of(operations: Iterable[Operation]) -> list[Sale]:
    """The sales among a number's operations, oldest first."""
    found = [
        Sale(
            o.id,
            o.marketplace,
            o.service if o.kind is OperationKind.ACTIVATION else None,
            o.finished_at,
        )
        for o in operations
        if o.finish_status == FinishStatus.SOLD and o.finished_at is not None
    ]
    return sorted(found, key=lambda s: (s.sold_at, s.operation_id))


@dataclass(frozen=True, slots=True)
class Window:
    """What one rule forbids a query on one marketplace, as storage filters it: a sale on
    `sold_on` (or, `elsewhere`, on any marketplace but it) after `since` hides the number."""

    sold_on: str
    elsewhere: bool
    since: Timestamp
    number_wide: bool
    """False (scope service): only a rent hides the whole number; an activation sale hides
    only its own service, which the sale's global exclusion already does forever (L1)."""


def window_clauses(rules: LedgerRules, marketplace: str, now: Timestamp) -> list[Window]:
    """The windows binding offers on `marketplace` now; expired ones never show up, so a
    window stops binding when it ends, with no restart and nothing to clean up."""
    found: list[Window] = []
    for rule in rules.resale:
        since = now - rule.window_seconds
        wide = rule.scope is ResaleScope.NUMBER
        if rule.outbound and marketplace != rule.marketplace:
            found.append(Window(rule.marketplace, False, since, wide))
        if rule.inbound and marketplace == rule.marketplace:
            found.append(Window(rule.marketplace, True, since, wide))
    return found


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a resale window hides a number on a marketplace, and until when."""

    rule: ResaleRule
    sale: Sale
    until: Timestamp


def resale_hold(
    rules: LedgerRules,
    sales: Sequence[Sale],
    marketplace: str,
    service: ServiceName | None,
    now: Timestamp,
) -> Hold | None:
    """The resale window that forbids offering the number on `marketplace` for `service`
    now, the one ending last; or None. `service` None asks about the whole number (a count,
    a rent): under scope `service` only a rent sold in the window hides all of it."""
    holds: list[Hold] = []
    for rule in rules.resale:
        for sale in sales:
            until = sale.sold_at + rule.window_seconds
            if now >= until:
                continue
            if not _crosses(rule, sale.marketplace, marketplace):
                continue
            same_service = sale.service is None or (service is not None and sale.service == service)
            if rule.scope is ResaleScope.NUMBER or same_service:
                holds.append(Hold(rule, sale, until))
    return max(holds, key=lambda h: (h.until, h.sale.operation_id), default=None)


def _crosses(rule: ResaleRule, sold_on: str, offered_on: str) -> bool:
    if sold_on == offered_on:
        return False
    return (rule.outbound and sold_on == rule.marketplace) or (
        rule.inbound and offered_on == rule.marketplace
    )


def conflicting(
    groups: Iterable[ExclusionGroup], service: ServiceName, country: CountryName
) -> list[ServiceName]:
    """The services a sale of `service` on a number of `country` hides, forever (L5)."""
    found: set[ServiceName] = set()
    for group in groups:
        if service in group.services and group.binds(country):
            found |= group.services - {service}
    return sorted(found)


def groups_joining(
    groups: Iterable[ExclusionGroup], sold: ServiceName, hidden: ServiceName
) -> list[ExclusionGroup]:
    """The groups through which a sale of `sold` hides `hidden` (for explaining it)."""
    return [g for g in groups if sold in g.services and hidden in g.services and sold != hidden]
