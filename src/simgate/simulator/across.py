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
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from simgate.simulator.farm import SimCard
from simgate.simulator.findings import Report
from simgate.simulator.groups import group_hidden
from simgate.simulator.ledger import Ledger, MarketOp, OrderRecord, Snapshot, country_totals
from simgate.simulator.protocol import Names

RESALE_GUARDED = "herosms"
"""The marketplace whose terms fine resale across platforms (CONTRACT.md, "Marketplace rules
beyond one operation"): 60 days by default, scope `number`."""
RESALE_DAYS = 60.0
DAY = 86_400.0

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
    budget: int | None = None
    """Status-4 cancellations after which a number is gone for a service here (agent: 4)."""


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
    speed: float = 1.0,
    resale_days: float = RESALE_DAYS,
    resale_scope: str = "number",
) -> None:
    no_sim_held_twice(sellers, report)
    counts_within_free_sims(sellers, cards, report, stale_after=stale_after)
    pushes_to_the_right_marketplace(sellers, routed, report)
    no_push_after_success(sellers, report)
    no_resale_elsewhere(sellers, report)
    if any(seller.name == RESALE_GUARDED for seller in sellers):
        resale_window_kept(sellers, report, window=resale_days * DAY / speed, scope=resale_scope)


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
        # One observation per operation: did any later one elsewhere overlap it?
        for index, (name_a, a) in enumerate(held):
            later = held[index + 1 :]
            clash = next(((name, b) for name, b in later if name != name_a and _surely_overlap(a, b)), None)
            if clash is not None:
                name_b, b = clash
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
    less every order it sent that the server may have served after counting. Time moves
    forward once over all answers, so a long demo is judged in one pass.
    """
    check = report.check("counts_within_free_sims")
    enabled: dict[str, set[str]] = {}
    for card in cards:
        if card.enabled:
            enabled.setdefault(card.country, set()).add(card.phone)
    ops = sorted((op for s in sellers for ops in s.ledger.history.values() for op in ops), key=_issued)
    sales = sorted(
        (when, s.names.service(service), phone)
        for s in sellers
        for (phone, service), when in s.ledger.sold.items()
    )
    answers = sorted(
        ((snapshot, s) for s in sellers for snapshot in s.ledger.polls), key=lambda a: a[0].started
    )
    promises = {s.name: _Promises(s, stale_after) for s in sellers}
    active: list[MarketOp] = []
    sold: dict[str, set[str]] = {}
    next_op = next_sale = 0
    for snapshot, seller in answers:
        t0, t1 = snapshot.started, snapshot.answered
        while next_op < len(ops) and ops[next_op].issued_at <= t0:
            active.append(ops[next_op])
            next_op += 1
        active = [op for op in active if (op.finish_sent_at or math.inf) >= t0]
        busy = {op.phone for op in active if (op.finish_sent_at or math.inf) >= t1}
        while next_sale < len(sales) and sales[next_sale][0] <= t0:
            _, service, phone = sales[next_sale]
            sold.setdefault(service, set()).add(phone)
            next_sale += 1
        total = _canonical(country_totals(snapshot.counts), seller.names)
        for other in sellers:
            if other is not seller:
                total.update(promises[other.name].at(t0, t1))
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


def _issued(op: MarketOp) -> float:
    return op.issued_at


def _canonical(totals: Mapping[tuple[str, str], int], names: Names) -> Counter[tuple[str, str]]:
    canonical: Counter[tuple[str, str]] = Counter()
    for (country, service), count in totals.items():
        canonical[(names.country(country), names.service(service))] += count
    return canonical


IN_FLIGHT = 30.0
"""Real seconds an order may be in flight (the simulator's deadline is 10 s)."""


class _Promises:
    """What one marketplace's GET_SERVICES answers still promise at a given time."""

    def __init__(self, seller: Seller, stale_after: float) -> None:
        self.seller = seller
        self.stale_after = stale_after
        # One marketplace polls one answer after the other: answers are in time order.
        self.polls = seller.ledger.polls
        self.answered = [snapshot.answered for snapshot in self.polls]
        self.orders: dict[str, list[OrderRecord]] = {}
        for order in seller.ledger.orders:  # in the order they were sent
            self.orders.setdefault(order.country, []).append(order)
        self.sent = {country: [o.requested_at for o in orders] for country, orders in self.orders.items()}

    def at(self, t0: float, t1: float) -> Counter[tuple[str, str]]:
        """The least each (country, service) may still be promised during [t0, t1]."""
        last = bisect_right(self.answered, t0)
        candidates = (
            self.polls[last - 1 : last] if last and self.answered[last - 1] >= t0 - self.stale_after else []
        )
        for snapshot in self.polls[last:]:
            if snapshot.started >= t1:
                break
            candidates.append(snapshot)
        least: Counter[tuple[str, str]] | None = None
        for snapshot in candidates:
            left = {
                (country, service): max(0, count - self._taken(country, snapshot.started, t1))
                for (country, service), count in country_totals(snapshot.counts).items()
            }
            promised = _canonical(left, self.seller.names)
            least = (
                promised
                if least is None
                else Counter({k: min(least[k], promised[k]) for k in least | promised})
            )
        return least or Counter()

    def _taken(self, country: str, counted: float, until: float) -> int:
        """Orders the server may have served after counting at `counted`, sent before `until`."""
        sent = self.sent.get(country, [])
        first = bisect_left(sent, counted)
        taken = bisect_left(sent, until) - first
        orders = self.orders[country] if sent else []
        index = first - 1
        while index >= 0 and sent[index] >= counted - IN_FLIGHT:
            answered = orders[index].answered_at
            if answered is None or answered >= counted:
                taken += 1
            index -= 1
        return taken


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


def offered_again_across(
    sellers: Sequence[Seller], cards: Sequence[SimCard], rounds: Sequence[Sequence[Snapshot]]
) -> tuple[int, list[str]]:
    """After every operation ended: each number not gone for a service is offered for it by
    some marketplace, so what all of them advertise together covers it (lanes: each free SIM
    is counted by one marketplace at a time, so none alone offers them all).

    `rounds` are final GET_SERVICES answers of every marketplace, polled a few times: a SIM
    moving between lanes is counted by neither for a moment (it leaves, then joins after its
    old marketplace's next answer), so each (country, service) is judged on its best round.
    A SIM is expected only where nothing but its lane decides where it is offered: every
    marketplace that may hold it (its CSV row, a name for its country) offers the service
    and has not had the number cancelled away for it. Returns how many (country, service)
    pairs were judged and what fell short.
    """
    end = math.inf
    countries = {s.name: {s.names.country(k[0]) for p in s.ledger.polls for k in p.counts} for s in sellers}
    services = {s.name: {s.names.service(k[2]) for p in s.ledger.polls for k in p.counts} for s in sellers}
    sold = {(phone, s.names.service(service)) for s in sellers for (phone, service) in s.ledger.sold}
    sold |= group_hidden(sold, {card.phone: card.country for card in cards})
    bound = resale_bound(sellers)
    expected: Counter[tuple[str, str]] = Counter()
    for card in cards:
        holders = [s for s in sellers if card.sold_on(s.name) and card.country in countries[s.name]]
        if not card.enabled or not holders or card.phone in bound:
            continue
        for service in set.intersection(*(services[s.name] for s in holders)):
            if (card.phone, service) in sold:
                continue
            if any(
                s.ledger.gone(card.phone, s.names.own_service(service), end, budget=s.budget) for s in holders
            ):
                continue
            expected[(card.country, service)] += 1
    best: Counter[tuple[str, str]] = Counter()
    for snapshots in rounds:
        advertised: Counter[tuple[str, str]] = Counter()
        for seller, snapshot in zip(sellers, snapshots, strict=True):
            advertised.update(_canonical(country_totals(snapshot.counts), seller.names))
        best = Counter({key: max(best[key], advertised[key]) for key in best | advertised})
    problems = [
        f"{country}/{service}: {best[(country, service)]} offered in all, {count} free"
        for (country, service), count in sorted(expected.items())
        if best[(country, service)] < count
    ]
    return len(expected), problems


def resale_bound(sellers: Sequence[Seller]) -> set[str]:
    """Numbers HeroSMS's resale window may keep out of some marketplace's offer (any sale,
    once HeroSMS sells: the window outlasts a demo): where they are offered is the lanes'
    and the window's business, so "offered again" does not expect them anywhere."""
    if not any(seller.name == RESALE_GUARDED for seller in sellers):
        return set()
    return {op.phone for s in sellers for op in s.ledger.ops.values() if op.status == 3}


def resale_window_kept(
    sellers: Sequence[Seller], report: Report, *, window: float, scope: str = "number"
) -> None:
    """A number sold on HeroSMS is issued on no other marketplace inside the window, and a
    number sold elsewhere is not issued on HeroSMS inside it (`window` in real seconds, the
    simulated days divided by the speed). Scope `number`: any service; `service`: only the
    one sold (a rent binds them all).

    Seen from the buyers, "offered" is "issued": a count names no number. Conservative on
    races: a sale counts from its confirmed FINISH, and only orders sent after it are judged.
    """
    check = report.check("resale_window_kept")
    sales: dict[str, list[tuple[float, str, MarketOp]]] = {}
    for seller in sellers:
        for op in seller.ledger.ops.values():
            if op.status == 3 and op.confirmed and op.closed_at is not None:
                sales.setdefault(op.phone, []).append((op.closed_at, seller.name, op))
    for seller in sellers:
        for op in seller.ledger.ops.values():
            bound = [
                (name, sale)
                for at, name, sale in sales.get(op.phone, ())
                if name != seller.name
                and RESALE_GUARDED in (name, seller.name)
                and at < op.requested_at <= at + window
                and (scope == "number" or sale.canonical is None or sale.canonical == op.canonical)
            ]
            if bound:
                name, sale = bound[0]
                check.fail(
                    f"{op.phone} issued on {seller.name} for {op.canonical or 'rent'} after its sale on "
                    f"{name} for {sale.canonical or 'rent'}, inside the resale window"
                )
            else:
                check.ok()
