"""Lanes: the one marketplace that counts and issues each free SIM (CONTRACT.md, "One SIM, one
buyer at a time").

Every marketplace over-reporting costs a block (30 minutes on Onlinesim and SMSHUB), so a free
SIM is counted by exactly one marketplace: its lane. A SIM changes lane in two steps. First it
is marked leaving: its old lane stops counting it in new answers but may still be issued it
(its last answer counted it), and the new lane neither counts nor issues it. Then it joins the
new lane once the old lane's marketplace has been answered a GET_SERVICES that no longer
counted it, or once every answer that could have counted it is too old to act on.

Pure planning: storage tallies the farm in LaneGroups, these functions say how many SIMs of
each group go where, and storage carries the moves out with conditional updates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from simgate.domain.model import Marketplace, Number
from simgate.domain.types import CountryName, Timestamp

CLOCK_SKEW = 1.0
"""Seconds between two instances' clocks (NTP keeps them within milliseconds): a leave stamped
on one host and a poll timed on another are compared with this much to spare."""

SEPARATOR = "|"


def parse_allowed(raw: str) -> frozenset[str]:
    """The CSV's and the database's `onlinesim|smshub`; '' means every enabled marketplace."""
    return frozenset(name for name in (part.strip() for part in raw.split(SEPARATOR)) if name)


def format_allowed(names: Iterable[str]) -> str:
    return SEPARATOR.join(sorted(set(names)))


def may_sell(allowed: frozenset[str], marketplace: str) -> bool:
    return not allowed or marketplace in allowed


def lanes_for(allowed: frozenset[str], enabled: Iterable[str]) -> list[str]:
    return sorted(name for name in enabled if may_sell(allowed, name))


def counted_by(number: Number, marketplace: str) -> bool:
    """Whether `marketplace`'s GET_SERVICES counts this SIM: free, in its lane, not leaving."""
    return number.lane == marketplace and number.lane_target is None


def joins_after_poll(number: Number, marketplace: str, asked_at: Timestamp) -> bool:
    """A leaving SIM may join its new lane after this answer to its old lane's marketplace.

    `lane_leaving_at` is stamped only after the leave mark committed, and `asked_at` was read
    before the answer's snapshot began, so stamp < asked_at means the answer did not count it.
    """
    return (
        number.lane == marketplace
        and number.lane_target is not None
        and number.lane_leaving_at is not None
        and number.lane_leaving_at + CLOCK_SKEW < asked_at
    )


def joins_when_stale(number: Number, now: Timestamp, stale_seconds: float) -> bool:
    """Every answer that counted this SIM was computed before its leave was stamped; once that
    is `stale_seconds` old, no marketplace acts on such an answer any more."""
    return (
        number.lane_target is not None
        and number.lane_leaving_at is not None
        and number.lane_leaving_at < now - stale_seconds
    )


def idle_since(number: Number) -> Timestamp:
    """Since when the SIM has sat in its lane unsold: its last issue or its last move, the
    later (0: neither known)."""
    return max(number.last_issued_at or 0.0, number.lane_moved_at or 0.0)


def is_idle(number: Number, before: Timestamp) -> bool:
    """Free in its lane, not leaving, and neither issued nor moved since `before` (the round's
    `now - SIMGATE_LANE_IDLE_SECONDS`): its lane's marketplace had every chance to order it."""
    return number.lane is not None and number.lane_target is None and idle_since(number) < before


def leave_order(
    number: Number, idle_before: Timestamp | None, last_issued_first: bool = False
) -> tuple[int, float]:
    """Which free SIMs of a group leave a lane first: the idle ones, longest idle first, then
    the most recently issued. A leaving SIM stays issuable by its old lane until that lane's
    next poll, and GET_NUMBER takes the longest unissued SIM first: of the SIMs a lane sells,
    the one it issued last is the one it is least likely to take back (cancelling the move)
    before the move completes. A lane that orders every SIM it frees (Onlinesim in the demo)
    otherwise never lets one go."""
    if last_issued_first:
        # The other half of a swap (_one_swap): the last sold first, a SIM that arrived
        # within the idle period last (sending it straight back would only flap).
        arrived = idle_before is not None and (number.lane_moved_at or 0.0) >= idle_before
        return (int(arrived), -(number.last_issued_at or 0.0))
    since = idle_since(number)
    if idle_before is not None and since < idle_before:
        return (0, since)
    return (1, -since)


@dataclass(frozen=True, slots=True)
class LaneGroup:
    """SIMs of one country that share a lane, a pending move and the marketplaces allowed."""

    country: CountryName
    lane: str | None
    target: str | None
    allowed: frozenset[str]
    size: int
    """Every SIM of the group, busy, offline and disabled included: they come back."""
    movable: int
    """Free (enabled, online, no operation) and not leaving: may be moved now."""
    idle: int = 0
    """Of `movable`, those idle (is_idle at the round's threshold): they rotate."""


@dataclass(frozen=True, slots=True)
class Move:
    country: CountryName
    allowed: frozenset[str]
    source: str | None
    """None: unplaced SIMs, placed at once (no marketplace ever counted them)."""
    target: str | None
    """None: the SIM may be sold on no enabled marketplace; it leaves every lane."""
    count: int
    idle_before: Timestamp | None = None
    """The round's idle threshold: storage takes SIMs in leave_order (None: no SIM is idle)."""
    only_idle: bool = False
    """Only SIMs idle since before `idle_before` (is_idle): the outgoing half of a swap."""
    last_issued_first: bool = False
    """The incoming half of a swap: leave_order's last sold first."""


Demand = Mapping[tuple[str, CountryName], int]
"""GET_NUMBER orders per (marketplace, country) in the demand window."""

MIN_SHARE = 0.1
"""Each enabled marketplace's floor, as a share of a country's SIMs (SIMGATE_LANE_MIN_SHARE).

Demand is read from orders, and a marketplace orders only SIMs its lane holds: without a
floor, a lane that fell near zero (the other marketplace ordered a thousand times in the
window) could never show its own demand again. A tenth keeps even four marketplaces (the
agent family plus Onlinesim) at 40 % of the farm in floors, so most SIMs still follow
demand, while each lane holds enough SIMs for its buyers' orders to be seen within the
demand window."""


def shares(
    marketplaces: Sequence[Marketplace],
    demand: Demand,
    country: CountryName,
    min_share: float = MIN_SHARE,
) -> dict[str, float]:
    """Each enabled marketplace's target share of a country's SIMs: a floor of `min_share`,
    and the rest in proportion to weight x (1 + orders).

    The floor (and the 1) keep a lane with no orders from starving: a marketplace that holds
    no SIM can never order one and show its demand. Weight 0 gets no floor: the owner asked
    for that marketplace to sell only what nobody else may.
    """
    eligible = [m for m in marketplaces if m.enabled and (m.countries is None or country in m.countries)]
    scores = {m.name: max(0.0, m.weight) * (1 + demand.get((m.name, country), 0)) for m in eligible}
    total = sum(scores.values())
    if total <= 0:
        return {name: 1 / len(scores) for name in scores} if scores else {}
    floored = [name for name, score in scores.items() if score > 0]
    floor = min(max(0.0, min_share), 1 / len(floored))
    rest = 1 - floor * len(floored)
    return {name: (floor if score > 0 else 0.0) + rest * score / total for name, score in scores.items()}


class _Country:
    """One country's lanes while a plan is made: sizes follow every planned move."""

    def __init__(self, groups: list[LaneGroup], share: dict[str, float], min_share: float) -> None:
        self.share = share
        self.total = sum(g.size for g in groups)
        # With a floor, a lane keeps at least one SIM, where the country has one for each:
        # a tenth of five SIMs rounds to none, and a lane holding none can never order.
        floored = [lane for lane, part in share.items() if part > 0]
        self.least = 1.0 if min_share > 0 and floored and self.total >= len(floored) else 0.0
        self.size: dict[str, float] = defaultdict(float)
        for g in groups:
            lane = g.target or g.lane
            if lane is not None:
                self.size[lane] += g.size

    def gap(self, lane: str) -> float:
        """Positive: below its target by that many SIMs."""
        part = self.share.get(lane, 0.0)
        target = max(self.total * part, self.least if part > 0 else 0.0)
        return target - self.size[lane]

    def best(self, lanes: Iterable[str]) -> str | None:
        candidates = [lane for lane in lanes if lane in self.share]
        return max(candidates, key=lambda lane: (self.gap(lane), lane), default=None)


def _by_country(groups: Iterable[LaneGroup]) -> dict[CountryName, list[LaneGroup]]:
    found: dict[CountryName, list[LaneGroup]] = defaultdict(list)
    for group in groups:
        found[group.country].append(group)
    return dict(sorted(found.items()))


_MoveKey = tuple[CountryName, frozenset[str], str | None, str | None, bool, bool]


def _add(moves: dict[_MoveKey, int], move: Move) -> None:
    key = (move.country, move.allowed, move.source, move.target, move.only_idle, move.last_issued_first)
    moves[key] += move.count


def _flatten(moves: dict[_MoveKey, int], idle_before: Timestamp | None = None) -> list[Move]:
    """Every move carries the round's idle threshold (leave_order). The idle-only halves of
    swaps come first: the other halves may take idle SIMs too, and must not take theirs."""
    found = [Move(c, a, s, t, k, idle_before, i, last) for (c, a, s, t, i, last), k in moves.items() if k > 0]
    return sorted(found, key=lambda m: not m.only_idle)


def plan_placement(
    groups: Iterable[LaneGroup],
    marketplaces: Sequence[Marketplace],
    demand: Demand,
    min_share: float = MIN_SHARE,
) -> list[Move]:
    """Place every unplaced SIM at once, each into the allowed lane furthest below its target."""
    moves: dict[_MoveKey, int] = defaultdict(int)
    for country, members in _by_country(groups).items():
        state = _Country(members, shares(marketplaces, demand, country, min_share), min_share)
        for group in members:
            if group.lane is not None:
                continue
            lanes = lanes_for(group.allowed, state.share)
            for _ in range(group.size if lanes else 0):
                lane = state.best(lanes)
                assert lane is not None
                state.size[lane] += 1
                _add(moves, Move(country, group.allowed, None, lane, 1))
    return _flatten(moves)


def plan_moves(
    groups: Iterable[LaneGroup],
    marketplaces: Sequence[Marketplace],
    demand: Demand,
    limit: int,
    min_share: float = MIN_SHARE,
    idle_before: Timestamp | None = None,
) -> list[Move]:
    """At most `limit` free SIMs marked leaving, toward the lanes furthest below their targets,
    then idle SIMs rotated between lanes (with `idle_before`, the round's idle threshold).

    First the SIMs whose lane the owner no longer allows (the CSV changed), then one SIM at a
    time from the lane most above its target to one at least a whole SIM below its own: the
    source ends less than a whole SIM below its target, so no move ever undoes this one (no
    flapping). What the limit leaves goes to rotation (_one_swap). Countries take turns, so a
    bounded round serves every country, not the first ones in the alphabet.
    """
    enabled = {m.name for m in marketplaces if m.enabled}
    moves: dict[_MoveKey, int] = defaultdict(int)
    countries: list[tuple[_Country, list[LaneGroup]]] = []
    left: dict[int, int] = {}
    for country, members in _by_country(groups).items():
        state = _Country(members, shares(marketplaces, demand, country, min_share), min_share)
        countries.append((state, members))
        left.update({id(g): g.movable for g in members if g.lane in enabled and g.target is None})
        for group in members:
            # A lane the owner no longer allows, or whose marketplace has no name for the
            # country (it never advertises the SIM there): the SIM leaves first.
            stays = may_sell(group.allowed, str(group.lane)) and group.lane in state.share
            if id(group) not in left or stays or limit <= 0:
                continue
            count = min(left[id(group)], limit)
            target = state.best(lanes_for(group.allowed, state.share))
            _add(moves, Move(country, group.allowed, group.lane, target, count))
            left[id(group)] -= count
            limit -= count
            state.size[str(group.lane)] -= count
            if target is not None:
                state.size[target] += count
    every = list(countries)
    while limit > 0 and countries:
        still: list[tuple[_Country, list[LaneGroup]]] = []
        for state, members in countries:
            move = _one_move(state, members, left, enabled) if limit > 0 else None
            if move is not None:
                _add(moves, move)
                limit -= 1
                still.append((state, members))
        countries = still
    if idle_before is None:
        return _flatten(moves)
    # Storage moves the idlest SIMs first: what left a group above was idle first.
    idle = {id(g): max(0, g.idle - (g.movable - left[id(g)])) for g in _groups_of(every) if id(g) in left}
    received: dict[int, set[str]] = defaultdict(set)
    while limit >= 2 and every:
        still = []
        for state, members in every:
            pair = _one_swap(state, members, left, idle, received[id(state)]) if limit >= 2 else None
            if pair is not None:
                going, coming = pair
                received[id(state)].add(str(going.target))
                _add(moves, going)
                _add(moves, coming)
                limit -= 2
                still.append((state, members))
        every = still
    return _flatten(moves, idle_before)


def _groups_of(countries: Iterable[tuple[_Country, list[LaneGroup]]]) -> list[LaneGroup]:
    return [g for _, members in countries for g in members]


def _one_swap(
    state: _Country, members: list[LaneGroup], left: dict[int, int], idle: dict[int, int], received: set[str]
) -> tuple[Move, Move] | None:
    """One idle SIM out of a lane and one SIM back into it from another lane: sizes, and so
    the targets demand set, stay as they are while the SIMs rotate.

    Why: a lane's SIMs can be spent for its marketplace (every service it buys sold once,
    forever) while other marketplaces would still sell them. Demand cannot see that (the
    lane orders nothing, so it shrinks to its floor, which is then spent too); idleness can.
    The lane whose SIMs are idlest goes first, with the lane whose SIMs are least idle (the
    busiest buyer, likeliest to sell what the first cannot, and holding SIMs it can): that
    one gives back the free SIM it issued last. Not its idle ones: in the demo those were
    spent for the popular services every marketplace buys, as spent as what they replaced;
    a SIM just sold has services someone buys, and being last in its lane's issue order it
    is the least likely to be taken back before the move completes. If the busiest lane
    has no free SIM this round, the swap waits: trading idle SIMs with a lane as idle would
    only reset their idle clocks. An arriving SIM is not idle until it has sat there
    `idle_seconds` unsold, so no swap undoes the previous one, and a SIM hops at most once
    per idle period; a lane that received idle SIMs this round sends none (it would send
    back the SIMs it is receiving in exchange).
    """
    idle_in: dict[str, int] = defaultdict(int)
    for g in members:
        idle_in[str(g.lane)] += idle.get(id(g), 0)

    def idle_share(lane: str) -> float:
        return idle_in[lane] / state.size[lane] if state.size[lane] > 0 else 0.0

    names = sorted(state.share)
    sources = (n for n in names if idle_in[n] > 0 and n not in received)
    for source in sorted(sources, key=lambda n: (-idle_share(n), n)):
        partners = [
            n
            for n in names
            if n != source
            and any(g.lane == n and g.size > 0 and may_sell(g.allowed, source) for g in members)
            and any(g.lane == source and idle.get(id(g), 0) > 0 and may_sell(g.allowed, n) for g in members)
        ]
        if not partners:
            continue
        target = min(partners, key=lambda n: (idle_share(n), n))
        out = [
            g for g in members if g.lane == source and idle.get(id(g), 0) > 0 and may_sell(g.allowed, target)
        ]
        back = [
            g for g in members if g.lane == target and left.get(id(g), 0) > 0 and may_sell(g.allowed, source)
        ]
        if not back:
            continue
        going = max(out, key=lambda g: idle[id(g)])
        coming = max(back, key=lambda g: (left[id(g)] - idle.get(id(g), 0), left[id(g)]))
        if left[id(coming)] <= idle.get(id(coming), 0):  # only idle SIMs left there
            idle[id(coming)] -= 1
        left[id(coming)] -= 1
        left[id(going)] -= 1
        idle[id(going)] -= 1
        return (
            Move(going.country, going.allowed, source, target, 1, only_idle=True),
            Move(coming.country, coming.allowed, target, source, 1, last_issued_first=True),
        )
    return None


def _one_move(
    state: _Country, members: list[LaneGroup], left: dict[int, int], enabled: set[str]
) -> Move | None:
    for target in sorted(state.share, key=lambda lane: (-state.gap(lane), lane)):
        if state.gap(target) < 1:
            return None
        sources = [
            g
            for g in members
            if left.get(id(g), 0) > 0
            and g.lane != target
            and may_sell(g.allowed, target)
            and state.gap(str(g.lane)) < 0
        ]
        if sources:
            source = max(sources, key=lambda g: (-state.gap(str(g.lane)), str(g.lane)))
            left[id(source)] -= 1
            state.size[str(source.lane)] -= 1
            state.size[target] += 1
            return Move(source.country, source.allowed, source.lane, target, 1)
    return None
