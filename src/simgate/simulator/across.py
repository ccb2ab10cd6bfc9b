"""Checks across marketplaces that sell one farm: what none of them can see alone.

Each simulated marketplace judges its partner from its own ledger. Side by side, their
ledgers and the SIM bank's records show the rules of selling one SIM in several places
(CONTRACT.md, "Several marketplaces on the same SIMs"): no SIM held by two marketplaces at
once; the counts of all marketplaces together never above the SIMs the farm has free; every
SMS pushed to the marketplace whose operation holds the number, and to no other; nothing
pushed again after a SUCCESS anywhere; a number sold for a service somewhere never issued
for it elsewhere.

Like every check here, each judgement is conservative on races: it fails only on evidence
that no ordering of concurrent calls explains.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from simgate.simulator.farm import SimCard
from simgate.simulator.ledger import Ledger, MarketOp, Snapshot, country_totals
from simgate.simulator.protocol import Names
from simgate.simulator.report import Report

STALE_AFTER = 30.0
"""Real seconds after which a marketplace's last GET_SERVICES answer no longer binds the
partner: it may move those SIMs to another marketplace's lane (CONTRACT.md). The demo's
marketplaces poll every 1-2 s; a partner's own limit is expected to be far longer."""


@dataclass(frozen=True)
class Seller:
    """One marketplace as the checks across see it: its name, records and names."""

    name: str
    ledger: Ledger
    names: Names


@dataclass(frozen=True)
class Routed:
    """An SMS the server routed to an operation (from the SIM bank's records)."""

    phone: str
    text: str
    operation_id: int


def judge_across(
    sellers: Sequence[Seller],
    cards: Sequence[SimCard],
    routed: Iterable[Routed],
    report: Report,
    *,
    stale_after: float = STALE_AFTER,
) -> None:
    no_sim_held_twice(sellers, report)
    counts_within_free_sims(sellers, cards, report, stale_after=stale_after)
    pushes_to_the_right_marketplace(sellers, routed, report)
    no_push_after_success(sellers, report)
    no_resale_elsewhere(sellers, report)


def _surely_overlap(a: MarketOp, b: MarketOp) -> bool:
    """Both were issued (claimed on the server) before either FINISH was sent (released)."""
    released = min(a.finish_sent_at or math.inf, b.finish_sent_at or math.inf)
    return max(a.issued_at, b.issued_at) < released


def no_sim_held_twice(sellers: Sequence[Seller], report: Report) -> None:
    check = report.check("no_sim_held_by_two_marketplaces")
    by_phone: dict[str, list[tuple[str, MarketOp]]] = {}
    for seller in sellers:
        for phone, ops in seller.ledger.history.items():
            by_phone.setdefault(phone, []).extend((seller.name, op) for op in ops)
    for phone, held in by_phone.items():
        for (name_a, a), (name_b, b) in combinations(held, 2):
            if name_a == name_b:
                continue
            if _surely_overlap(a, b):
                check.fail(f"{phone}: {name_a} operation {a.id} and {name_b} operation {b.id} open together")
            else:
                check.ok()


def counts_within_free_sims(
    sellers: Sequence[Seller], cards: Sequence[SimCard], report: Report, *, stale_after: float
) -> None:
    """At every GET_SERVICES answer of any marketplace: that answer, plus what each other
    marketplace's last answer still promises (less its orders since), may not exceed the
    SIMs free throughout the call, per country and service.

    "Still promises" is read at its most lenient: every answer the other marketplace may
    have been holding at the time (the last one before, any one crossing this call), each
    less every order it sent that the server may have served after counting.
    """
    check = report.check("counts_within_free_sims")
    enabled: dict[str, set[str]] = {}
    for card in cards:
        if card.enabled:
            enabled.setdefault(card.country, set()).add(card.phone)
    ops = [op for seller in sellers for ops in seller.ledger.history.values() for op in ops]
    sales = [
        (seller.names.service(service), phone, when)
        for seller in sellers
        for (phone, service), when in seller.ledger.sold.items()
    ]
    for seller in sellers:
        for snapshot in seller.ledger.polls:
            t0, t1 = snapshot.started, snapshot.answered
            total = _canonical(country_totals(snapshot.counts), seller.names)
            for other in sellers:
                if other is not seller:
                    total.update(_still_promised(other, t0, t1, stale_after))
            busy = {op.phone for op in ops if op.issued_at <= t0 and (op.finish_sent_at or math.inf) >= t1}
            sold: dict[str, set[str]] = {}
            for service, phone, when in sales:
                if when <= t0:
                    sold.setdefault(service, set()).add(phone)
            for (country, service), advertised in total.items():
                if advertised <= 0:
                    continue
                free = len(enabled.get(country, set()) - busy - sold.get(service, set()))
                if advertised > free:
                    check.fail(
                        f"{country}/{service}: {advertised} advertised in all at {seller.name}'s poll, "
                        f"{free} SIMs free"
                    )
                else:
                    check.ok()


def _canonical(totals: Mapping[tuple[str, str], int], names: Names) -> Counter[tuple[str, str]]:
    canonical: Counter[tuple[str, str]] = Counter()
    for (country, service), count in totals.items():
        canonical[(names.country(country), names.service(service))] += count
    return canonical


def _still_promised(seller: Seller, t0: float, t1: float, stale_after: float) -> Counter[tuple[str, str]]:
    polls = seller.ledger.polls
    before = [s for s in polls if s.answered <= t0]
    candidates: list[Snapshot] = [before[-1]] if before and before[-1].answered >= t0 - stale_after else []
    candidates += [s for s in polls if s.started < t1 and s.answered > t0]
    if not candidates:
        return Counter()
    least: Counter[tuple[str, str]] | None = None
    for snapshot in candidates:
        taken: Counter[str] = Counter(
            order.country
            for order in seller.ledger.orders
            if order.requested_at < t1
            and (order.answered_at is None or order.answered_at >= snapshot.started)
        )
        left = {
            (country, service): max(0, count - taken[country])
            for (country, service), count in country_totals(snapshot.counts).items()
        }
        promised = _canonical(left, seller.names)
        if least is None:
            least = promised
        else:
            least = Counter({key: min(least[key], promised[key]) for key in least.keys() | promised.keys()})
    return least or Counter()


def pushes_to_the_right_marketplace(
    sellers: Sequence[Seller], routed: Iterable[Routed], report: Report
) -> None:
    """Every push for an SMS the server routed to an operation reached that operation's
    marketplace; a push for a number the receiving marketplace never held is a failure."""
    check = report.check("pushes_to_the_right_marketplace")
    owner: dict[tuple[str, str], set[str]] = {}
    for sms in routed:
        for seller in sellers:
            op = seller.ledger.ops.get(sms.operation_id)
            if op is not None and op.phone == sms.phone:
                owner.setdefault((sms.phone, sms.text), set()).add(seller.name)
    for seller in sellers:
        for push in seller.ledger.pushes:
            owners = owner.get((push.phone, push.text))
            if owners is not None and seller.name not in owners:
                check.fail(
                    f"{push.phone}: {push.text[:30]!r} pushed to {seller.name}, "
                    f"routed to {', '.join(sorted(owners))}'s operation"
                )
            elif owners is None and push.phone not in seller.ledger.history:
                holders = [s.name for s in sellers if push.phone in s.ledger.history]
                check.fail(
                    f"{push.phone}: pushed to {seller.name}, which never held it"
                    + (f" ({', '.join(holders)} did)" if holders else "")
                )
            else:
                check.ok()


def no_push_after_success(sellers: Sequence[Seller], report: Report) -> None:
    """Once any marketplace answered SUCCESS to an SMS, it is pushed nowhere again."""
    check = report.check("no_push_after_success_anywhere")
    arrivals: dict[tuple[str, str], list[tuple[float, str, str]]] = {}
    for seller in sellers:
        for push in seller.ledger.pushes:
            arrivals.setdefault((push.phone, push.text), []).append((push.at, seller.name, push.answer))
    for (phone, text), pushes in arrivals.items():
        pushes.sort()
        success = next(((at, name) for at, name, answer in pushes if answer == "SUCCESS"), None)
        later = [(at, name) for at, name, _ in pushes if success is not None and at > success[0]]
        if success is not None and later:
            check.fail(f"{phone}: {text[:30]!r} pushed to {later[0][1]} after {success[1]} answered SUCCESS")
        else:
            check.ok()


def no_resale_elsewhere(sellers: Sequence[Seller], report: Report) -> None:
    """A number sold for a service on one marketplace is issued for it on no other."""
    check = report.check("no_resale_on_another_marketplace")
    sold: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for seller in sellers:
        for (phone, service), when in seller.ledger.sold.items():
            sold.setdefault((phone, seller.names.service(service)), []).append((when, seller.name))
    for seller in sellers:
        for op in seller.ledger.ops.values():
            if op.canonical is None:
                continue
            earlier = [
                name for when, name in sold.get((op.phone, op.canonical), []) if when <= op.requested_at
            ]
            elsewhere = [name for name in earlier if name != seller.name]
            if elsewhere:
                check.fail(
                    f"{op.phone} issued for {op.canonical} on {seller.name} after its sale on {elsewhere[0]}"
                )
            else:
                check.ok()
