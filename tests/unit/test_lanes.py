"""Lane planning, pure (domain/lanes.py): where SIMs go and when a leaving SIM may join."""

from __future__ import annotations

from simgate.domain import lanes
from simgate.domain.lanes import LaneGroup, Move
from simgate.domain.model import Marketplace, Number
from simgate.domain.types import CountryName, NumberId, OperatorName, PhoneNumber

RU = CountryName("russia")
OS, HUB = "onlinesim", "smshub"
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
