"""Why a number is not offered on a marketplace (for a service): `simgate numbers why` and the
SIM page of the console, from the number's facts alone.

An owner who sees a SIM idle while a marketplace asks for numbers needs the rule that holds it
back, named with its time: busy since, sold at, a resale window until, a group, a refusal, a
lane. Pure: storage gathers the facts, this explains them by the same rules the count and the
claim apply (rules.py, lanes.py, ledger.py), so the answer cannot drift from what is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from simgate.domain import lanes, ledger
from simgate.domain.ledger import LedgerRules
from simgate.domain.model import ExclusionFact, Marketplace, Number, Operation
from simgate.domain.types import EVERYWHERE, OperationId, ServiceName, Timestamp


@dataclass(frozen=True, slots=True)
class NumberFacts:
    number: Number
    operations: Sequence[Operation]
    """Every operation of the number (the ledger), any order."""
    exclusions: Sequence[ExclusionFact]
    marketplaces: Sequence[Marketplace]
    """Every registered marketplace, enabled or not."""


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str
    """disabled, offline, busy, not_enabled, not_allowed, lane, leaving, resale, sold, group,
    refused, retries, blocked: stable words for scripts and the console."""
    text: str
    until: Timestamp | None = None
    """When it stops binding by itself (a resale window); None: until something changes."""


def when(at: Timestamp) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def why_not(
    facts: NumberFacts,
    rules: LedgerRules,
    marketplace: str,
    service: ServiceName | None,
    now: Timestamp,
) -> list[Reason]:
    """Every reason the number is neither counted nor issued on `marketplace` for `service`
    (None: for any service; the services it is excluded from are each named). Empty: offered."""
    number = facts.number
    return [
        *_state(number, facts.operations),
        *_lane(number, facts.marketplaces, marketplace),
        *_resale(facts.operations, rules, marketplace, service, now),
        *_exclusions(facts, rules, marketplace, service),
    ]


def _state(number: Number, operations: Sequence[Operation]) -> list[Reason]:
    found: list[Reason] = []
    if not number.file_enabled:
        found.append(Reason("disabled", "disabled in the CSV (enabled column)"))
    if not number.operator_enabled:
        found.append(Reason("disabled", "switched off by the owner (simgate numbers enable to undo)"))
    if not number.online:
        found.append(Reason("offline", "offline: its gateway reports no SIM in the slot"))
    holding = next((o for o in operations if o.id == number.open_operation_id), None)
    if holding is not None:
        what = "rent" if holding.service is None else holding.service
        found.append(
            Reason(
                "busy",
                f"busy on {holding.marketplace} since {when(holding.opened_at)}"
                f" ({what}, operation {holding.id})",
            )
        )
    elif number.busy:
        found.append(Reason("busy", f"busy (operation {number.open_operation_id})"))
    return found


def _lane(number: Number, marketplaces: Sequence[Marketplace], marketplace: str) -> list[Reason]:
    enabled = {m.name for m in marketplaces if m.enabled}
    if marketplace not in enabled:
        return [Reason("not_enabled", f"{marketplace} is not enabled (no key set)")]
    if not lanes.may_sell(number.marketplaces, marketplace):
        allowed = lanes.format_allowed(number.marketplaces)
        return [Reason("not_allowed", f"not allowed on {marketplace} by its CSV marketplaces ({allowed})")]
    if number.lane is None:
        return [Reason("lane", "in no marketplace's lane yet (placed at the next rebalancing round)")]
    if number.lane != marketplace:
        moving = f", moving to {number.lane_target}'s" if number.lane_target else ""
        return [
            Reason("lane", f"in {number.lane}'s lane{moving}: one marketplace counts a free SIM at a time")
        ]
    if number.lane_target is not None:
        return [
            Reason(
                "leaving", f"leaving {marketplace}'s lane for {number.lane_target}'s: no longer counted there"
            )
        ]
    return []


def _resale(
    operations: Sequence[Operation],
    rules: LedgerRules,
    marketplace: str,
    service: ServiceName | None,
    now: Timestamp,
) -> list[Reason]:
    hold = ledger.resale_hold(rules, ledger.sales_of(operations), marketplace, service, now)
    if hold is None:
        return []
    sold_for = "rent" if hold.sale.service is None else hold.sale.service
    terms = hold.rule.marketplace
    text = (
        f"resale window of {terms}'s terms until {when(hold.until)}: sold for {sold_for} on"
        f" {hold.sale.marketplace} at {when(hold.sale.sold_at)} (operation {hold.sale.operation_id})"
    )
    return [Reason("resale", text, hold.until)]


def _exclusions(
    facts: NumberFacts, rules: LedgerRules, marketplace: str, service: ServiceName | None
) -> list[Reason]:
    by_id: dict[OperationId, Operation] = {o.id: o for o in facts.operations}
    found: list[Reason] = []
    for fact in sorted(facts.exclusions, key=lambda f: (f.service, f.marketplace)):
        if fact.marketplace not in (EVERYWHERE, marketplace):
            continue
        if service is not None and fact.service != service:
            continue
        cause = by_id.get(fact.operation_id) if fact.operation_id is not None else None
        found.append(_exclusion(fact, cause, rules))
    return found


def _exclusion(fact: ExclusionFact, cause: Operation | None, rules: LedgerRules) -> Reason:
    on = cause.marketplace if cause is not None else "a marketplace"
    at = when(fact.created_at)
    if fact.reason == "sold":
        return Reason("sold", f"sold for {fact.service} on {on} at {at}: never offered for it again")
    if fact.reason == "group":
        sold = cause.service if cause is not None else None
        names = [g.name for g in ledger.groups_joining(rules.groups, sold, fact.service)] if sold else []
        group = ", ".join(names) or "a group no longer configured"
        return Reason(
            "group", f"excluded from {fact.service} by group {group}: sold for {sold or '?'} on {on} at {at}"
        )
    if fact.reason == "refused":
        return Reason("refused", f"refused for {fact.service} (status 1) on {on} at {at}")
    if fact.reason == "retries":
        return Reason(
            "retries", f"retries for {fact.service} used up (status 4) on {fact.marketplace} at {at}"
        )
    return Reason(fact.reason, f"{fact.reason} for {fact.service} by the owner at {at}")
