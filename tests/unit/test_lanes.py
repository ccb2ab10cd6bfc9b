"""Lane planning, pure (domain/lanes.py): where SIMs go and when a leaving SIM may join."""

from __future__ import annotations

from simgate.domain import lanes
from simgate.domain.lanes import LaneGroup, Move
from simgate.domain.model import Marketplace, Number
from simgate.domain.types import CountryName, NumberId, OperatorName, PhoneNumber

RU = CountryName("russia")
OS, HUB, GRIZZLY = "onlinesim", "smshub", "grizzly"
BOTH = [Marketplace(OS, True), Marketplace(HUB, True)]


def group(
    lane: str | None, size: int, movable: int | None = None, allowed: frozenset[str] = frozenset()
) -> LaneGroup:
    return LaneGroup(RU, lane, None, allowed, size, size if movable is None else movable)


def test_unplaced_sims_fill_the_lanes_furthest_below_their_targets() -> None:
    moves = lanes.plan_placement([group(OS, 4), group(None, 6)], BOTH, {})
    assert sorted((m.target, m.count) for m in moves) == [(OS, 1), (HUB, 5)]


def test_a_lane_within_one_sim_of_its_target_does_not_flap() -> None:
    assert lanes.plan_moves([group(OS, 3), group(HUB, 2)], BOTH, {}, limit=10) == []


def test_demand_moves_sims_one_at_a_time_up_to_the_limit() -> None:
    demand = {(HUB, RU): 9}
    moves = lanes.plan_moves([group(OS, 10), group(HUB, 0)], BOTH, demand, limit=3)
    assert moves == [Move(RU, frozenset(), OS, HUB, 3)]


def test_only_free_sims_that_the_target_may_sell_move() -> None:
    only_os = frozenset({OS})
    moves = lanes.plan_moves([group(OS, 10, allowed=only_os), group(OS, 2, movable=1)], BOTH, {}, limit=10)
    assert moves == [Move(RU, frozenset(), OS, HUB, 1)]


def test_a_sim_in_a_lane_no_longer_allowed_leaves_first() -> None:
    moves = lanes.plan_moves([group(OS, 1, allowed=frozenset({HUB}))], BOTH, {}, limit=1)
    assert moves == [Move(RU, frozenset({HUB}), OS, HUB, 1)]


def test_weight_zero_gets_only_what_nobody_else_may_sell() -> None:
    markets = [Marketplace(OS, True, weight=0.0), Marketplace(HUB, True)]
    moves = lanes.plan_placement([group(None, 4), group(None, 2, allowed=frozenset({OS}))], markets, {})
    assert sorted((m.target, m.count) for m in moves) == [(OS, 2), (HUB, 4)]


def number(**lane: object) -> Number:
    return Number(
        NumberId(1), PhoneNumber("79281234567"), RU, OperatorName("mts"), "", True, True, True, None, **lane
    )  # type: ignore[arg-type]


def test_a_leave_joins_only_after_a_poll_timed_after_its_stamp() -> None:
    leaving = number(lane=OS, lane_target=HUB, lane_leaving_at=100.0)
    assert not lanes.joins_after_poll(leaving, OS, 100.5)  # within the clock-skew allowance
    assert lanes.joins_after_poll(leaving, OS, 101.5)
    assert not lanes.joins_after_poll(leaving, HUB, 200.0)  # the new lane's polls do not count
    unstamped = number(lane=OS, lane_target=HUB)
    assert not lanes.joins_after_poll(unstamped, OS, 1e12)
    assert lanes.joins_when_stale(leaving, 701.0, 600.0)
    assert not lanes.joins_when_stale(leaving, 699.0, 600.0)


def test_allowed_names_round_trip() -> None:
    assert lanes.parse_allowed(" smshub|onlinesim |") == {OS, HUB}
    assert lanes.format_allowed({HUB, OS}) == "onlinesim|smshub"
    assert lanes.parse_allowed("") == frozenset()


def test_countries_take_turns_in_a_bounded_round() -> None:
    groups = [
        LaneGroup(CountryName(c), OS, None, frozenset(), 10, 10) for c in ("germany", "poland", "russia")
    ]
    moves = lanes.plan_moves(groups, BOTH, {}, limit=3)
    assert sorted((m.country, m.count) for m in moves) == [("germany", 1), ("poland", 1), ("russia", 1)]


def test_a_marketplace_gets_only_sims_of_countries_it_has_names_for() -> None:
    russia_only = [Marketplace(OS, True), Marketplace(HUB, True, countries=frozenset({"russia"}))]
    germany = CountryName("germany")
    unplaced = [LaneGroup(germany, None, None, frozenset(), 4, 4), group(None, 4)]
    moves = lanes.plan_placement(unplaced, russia_only, {})
    assert sorted((m.country, m.target, m.count) for m in moves) == [
        ("germany", OS, 4),
        ("russia", OS, 2),
        ("russia", HUB, 2),
    ]
    # One already in SMSHUB's lane (imported before SMSHUB's names were known) leaves it.
    stranded = [LaneGroup(germany, HUB, None, frozenset(), 1, 1)]
    assert lanes.plan_moves(stranded, russia_only, {}, limit=5) == [Move(germany, frozenset(), HUB, OS, 1)]


def test_a_marketplace_without_orders_keeps_its_floor() -> None:
    # Onlinesim ordered a thousand times, SMSHUB never (its lane was empty): SMSHUB still gets
    # a tenth of the country's SIMs, so its buyers can order and its demand can show.
    demand = {(OS, RU): 1000}
    share = lanes.shares(BOTH, demand, RU)
    assert share[HUB] >= lanes.MIN_SHARE
    assert abs(sum(share.values()) - 1) < 1e-9
    moves = lanes.plan_moves([group(OS, 100), group(HUB, 0)], BOTH, demand, limit=50)
    assert moves == [Move(RU, frozenset(), OS, HUB, 10)]
    # Without the floor, demand alone starves it: less than one SIM of a hundred.
    assert lanes.plan_moves([group(OS, 100), group(HUB, 0)], BOTH, demand, limit=50, min_share=0) == []


def test_the_floor_is_tunable_and_never_exceeds_an_equal_split() -> None:
    demand = {(OS, RU): 1000}
    assert lanes.shares(BOTH, demand, RU, min_share=0.3)[HUB] >= 0.3
    assert lanes.shares(BOTH, demand, RU, min_share=0.9) == {OS: 0.5, HUB: 0.5}


def test_a_small_country_keeps_one_sim_in_each_lane() -> None:
    # A tenth of five SIMs is half a SIM; the starving lane still gets a whole one.
    moves = lanes.plan_moves([group(OS, 5), group(HUB, 0)], BOTH, {(OS, RU): 1000}, limit=5)
    assert moves == [Move(RU, frozenset(), OS, HUB, 1)]


def test_weight_zero_gets_no_floor() -> None:
    markets = [Marketplace(OS, True, weight=0.0), Marketplace(HUB, True)]
    assert lanes.shares(markets, {}, RU)[OS] == 0.0


# --- rotation of idle SIMs --------------------------------------------------------------------

IDLE_BEFORE = 1_000.0


def idle_group(lane: str, size: int, idle: int, allowed: frozenset[str] = frozenset()) -> LaneGroup:
    return LaneGroup(RU, lane, None, allowed, size, size, idle)


def test_a_lane_of_spent_sims_swaps_them_for_sims_of_a_lane_that_sells() -> None:
    # SMSHUB's lane holds five SIMs it has sold every service it buys on (all idle), and its
    # demand is gone with its orders: the targets are met, so only rotation moves anything.
    groups = [idle_group(OS, 5, 0), idle_group(HUB, 5, 5)]
    assert lanes.plan_moves(groups, BOTH, {}, limit=10) == []  # no threshold: no rotation
    moves = lanes.plan_moves(groups, BOTH, {}, limit=6, idle_before=IDLE_BEFORE)
    # Pairs (sizes stay): only idle SIMs leave SMSHUB; Onlinesim's last issued come back.
    assert sorted(moves, key=lambda m: str(m.source)) == [
        Move(RU, frozenset(), OS, HUB, 3, IDLE_BEFORE, last_issued_first=True),
        Move(RU, frozenset(), HUB, OS, 3, IDLE_BEFORE, only_idle=True),
    ]


def test_a_spent_lane_gets_the_sims_the_busiest_lane_sold_last_not_its_idle_ones() -> None:
    # Onlinesim's idle SIMs are as likely spent as SMSHUB's; the ones it sells are not.
    groups = [idle_group(OS, 6, 2), idle_group(HUB, 6, 6)]
    moves = lanes.plan_moves(groups, BOTH, {}, limit=8, idle_before=IDLE_BEFORE)
    assert sorted((m.source, m.count, m.only_idle, m.last_issued_first) for m in moves) == [
        (OS, 4, False, True),
        (HUB, 4, True, False),
    ]


def test_rotation_uses_what_rebalancing_leaves_and_keeps_the_allowed_marketplaces() -> None:
    only_hub = frozenset({HUB})
    groups = [idle_group(OS, 5, 0), idle_group(HUB, 3, 3, allowed=only_hub), idle_group(HUB, 2, 2)]
    moves = lanes.plan_moves(groups, BOTH, {}, limit=10, idle_before=IDLE_BEFORE)
    # The SIMs only SMSHUB may sell stay; the other two rotate.
    assert sorted(moves, key=lambda m: str(m.source)) == [
        Move(RU, frozenset(), OS, HUB, 2, IDLE_BEFORE, last_issued_first=True),
        Move(RU, frozenset(), HUB, OS, 2, IDLE_BEFORE, only_idle=True),
    ]
    # A rebalancing move comes first; the limit left is spent in whole pairs.
    uneven = [idle_group(OS, 9, 0), idle_group(HUB, 1, 1)]
    moves = lanes.plan_moves(uneven, BOTH, {}, limit=7, idle_before=IDLE_BEFORE)
    assert sum(m.count for m in moves) == 6
    assert sum(m.count for m in moves if m.source == OS) == 5  # 4 toward SMSHUB's target of 5, 1 back
    assert sum(m.count for m in moves if m.source == HUB) == 1  # its idle SIM out


def test_spent_lanes_wait_for_the_busiest_lanes_free_sims_rather_than_trade_among_themselves() -> None:
    # The demo: Onlinesim holds every SIM it has busy, SMSHUB's and Grizzly's are all spent.
    # Trading spent SIMs between them sells nothing and restarts their idle clocks.
    three = [*BOTH, Marketplace(GRIZZLY, True)]
    busy = LaneGroup(RU, OS, None, frozenset(), 6, 0, 0)
    spent = [idle_group(HUB, 6, 6), idle_group(GRIZZLY, 6, 6)]
    assert lanes.plan_moves([busy, *spent], three, {}, limit=10, idle_before=IDLE_BEFORE) == []
    one_free = LaneGroup(RU, OS, None, frozenset(), 6, 1, 0)
    moves = lanes.plan_moves([one_free, *spent], three, {}, limit=10, idle_before=IDLE_BEFORE)
    assert sorted((m.source, m.target, m.count) for m in moves) == [(GRIZZLY, OS, 1), (OS, GRIZZLY, 1)]


def test_idle_sims_leave_first_then_the_last_issued() -> None:
    def at(issued: float, moved: float | None = None) -> Number:
        return number(lane=OS, last_issued_at=issued, lane_moved_at=moved)

    free = [at(50.0), at(10.0), at(90.0), at(20.0, moved=80.0)]
    ordered = sorted(free, key=lambda n: lanes.leave_order(n, 60.0))
    assert [lanes.idle_since(n) for n in ordered] == [10.0, 50.0, 90.0, 80.0]
    # No threshold: nothing is idle, the last issued leaves first.
    assert [lanes.idle_since(n) for n in sorted(free, key=lambda n: lanes.leave_order(n, None))] == [
        90.0,
        80.0,
        50.0,
        10.0,
    ]


def test_lanes_without_idle_sims_do_not_rotate() -> None:
    groups = [idle_group(OS, 5, 0), idle_group(HUB, 5, 0)]
    assert lanes.plan_moves(groups, BOTH, {}, limit=10, idle_before=IDLE_BEFORE) == []


def test_idleness_counts_the_later_of_the_last_issue_and_the_last_move() -> None:
    assert lanes.idle_since(number(lane=OS)) == 0.0
    assert lanes.is_idle(number(lane=OS, last_issued_at=10.0, lane_moved_at=50.0), 60.0)
    assert not lanes.is_idle(number(lane=OS, last_issued_at=70.0, lane_moved_at=50.0), 60.0)
    assert not lanes.is_idle(number(lane=OS, last_issued_at=10.0, lane_moved_at=60.0), 60.0)
    assert not lanes.is_idle(number(lane=OS, lane_target=HUB), 60.0)  # leaving
    assert not lanes.is_idle(number(), 60.0)  # unplaced
