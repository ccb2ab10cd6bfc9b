"""Several marketplaces on one farm, on every store: lanes, two-step moves, the global ledger.

CONTRACT.md, "One SIM, one buyer at a time": a free SIM is counted by one marketplace at a
time, every count a marketplace was given stays issuable to it, a sale removes the number
from that service everywhere.
"""

from __future__ import annotations

import itertools

import pytest

from simgate.domain.lanes import Move
from simgate.domain.model import FinishPolicy, Number, NumberSpec, Operation
from simgate.domain.read_model import NumberQuery
from simgate.domain.types import EVERYWHERE, CountryName, NumberId, OperationId, PhoneNumber, ServiceName
from simgate.services.inventory import import_numbers
from simgate.services.lanes import LanePolicy, move_lanes, register_marketplaces, stamp_leaves, survey
from simgate.services.operations import finish_operation, issue_number, list_available, record_poll
from simgate.storage.ports import Store, UnitOfWork
from tests.factories import make_order, make_spec

NOW = 1_700_000_000.0
OS, HUB, GRIZZLY = "onlinesim", "smshub", "grizzly"
TELEGRAM = ServiceName("telegram")
SERVICES = (TELEGRAM, ServiceName("vkcom"))
AGENT = FinishPolicy(refuse_statuses=frozenset({1}), retry_budget_status=4, retry_budget=3)
_phones = itertools.count(1)


def register(store: Store, *names: str, now: float = NOW, **weights: float) -> None:
    store.run(lambda uow: register_marketplaces(uow, names, now, weights=weights))


def load(store: Store, count: int, **overrides: object) -> list[Number]:
    specs = [make_spec(phone=PhoneNumber(f"7999{next(_phones):07d}"), **overrides) for _ in range(count)]
    store.run(lambda uow: import_numbers(uow, specs, NOW))
    return [number(store, spec.phone) for spec in specs]


def number(store: Store, phone: str) -> Number:
    found = store.run(lambda uow: uow.numbers.get_by_phone(PhoneNumber(phone)))
    assert found is not None
    return found


def count(store: Store, marketplace: str, service: ServiceName = TELEGRAM) -> int:
    answer = store.run(lambda uow: list_available(uow, marketplace, SERVICES))
    return sum(c.operator_map.get("any", {}).get(service, 0) for c in answer if c.country == "russia")


def issue(store: Store, marketplace: str, service: ServiceName = TELEGRAM) -> Operation | None:
    order = make_order(service=service)
    return store.run(lambda uow: issue_number(uow, marketplace, order, NOW))


def finish(store: Store, operation: Operation, status: int, policy: FinishPolicy = AGENT) -> None:
    store.run(
        lambda uow: finish_operation(uow, operation.marketplace, operation.id, status, None, NOW + 1, policy)
    )


def lanes_of(store: Store) -> dict[str | None, int]:
    found: dict[str | None, int] = {}
    for n in store.run(lambda uow: uow.numbers.search(NumberQuery(limit=10_000))):
        found[n.lane] = found.get(n.lane, 0) + 1
    return found


def move(store: Store, phone: str, source: str, target: str) -> None:
    """Mark one SIM leaving `source` for `target` (as a round does), committed."""
    target_number = number(store, phone)

    def work(uow: UnitOfWork) -> list[NumberId]:
        return uow.lanes.mark_leaving(
            Move(target_number.country, target_number.marketplaces, source, target, 1)
        )

    store.run(work)


def stamp(store: Store, now: float) -> None:
    store.run(lambda uow: stamp_leaves(uow, uow.lanes.unstamped(), now))


def poll(store: Store, marketplace: str, asked_at: float) -> None:
    store.run(lambda uow: record_poll(uow, marketplace, asked_at))


# --- placement ------------------------------------------------------------------------------


def test_one_marketplace_sells_every_sim_as_before(store: Store) -> None:
    load(store, 3)
    assert lanes_of(store) == {OS: 3}
    assert count(store, OS) == 3
    assert count(store, HUB) == 0
    assert issue(store, HUB) is None


def test_an_import_shares_new_sims_among_the_enabled_marketplaces(store: Store) -> None:
    register(store, OS, HUB)
    load(store, 10)
    assert lanes_of(store) == {OS: 5, HUB: 5}
    assert count(store, OS) + count(store, HUB) == 10
    assert count(store, OS) == 5


def test_weights_tilt_the_placement(store: Store) -> None:
    register(store, OS, HUB, smshub=3.0)
    load(store, 8)
    assert lanes_of(store) == {OS: 2, HUB: 6}


def test_a_sim_goes_only_where_the_owner_allows(store: Store) -> None:
    register(store, OS, HUB)
    only_hub = load(store, 3, marketplaces=frozenset({HUB}))
    assert {number(store, n.phone).lane for n in only_hub} == {HUB}
    assert count(store, OS) == 0
    assert issue(store, OS) is None


def test_a_sim_no_enabled_marketplace_may_sell_is_counted_nowhere(store: Store) -> None:
    load(store, 1, marketplaces=frozenset({GRIZZLY}))
    assert lanes_of(store) == {None: 1}
    assert count(store, OS) == 0


def test_disabling_a_marketplace_hands_its_free_sims_on_at_once(store: Store) -> None:
    register(store, OS, HUB)
    load(store, 4)
    held = issue(store, HUB)
    assert held is not None
    register(store, OS)
    assert lanes_of(store) == {OS: 3, HUB: 1}  # the busy one stays with its operation
    finish(store, held, 5)
    register(store, OS)
    assert lanes_of(store) == {OS: 4}
    assert count(store, OS) == 4


# --- the two-step move ------------------------------------------------------------------------


def test_a_leaving_sim_is_counted_by_neither_lane_but_issuable_by_the_old(store: Store) -> None:
    register(store, OS, HUB)
    sims = load(store, 2)
    in_os = next(n for n in sims if number(store, n.phone).lane == OS)
    move(store, in_os.phone, OS, HUB)
    assert (count(store, OS), count(store, HUB)) == (0, 1)
    operation = issue(store, OS)
    assert operation is not None
    assert operation.phone == in_os.phone
    # Issued by its old lane: the move is cancelled, it stays there.
    after = number(store, in_os.phone)
    assert (after.lane, after.lane_target) == (OS, None)


def test_a_leaving_sim_joins_after_a_poll_that_did_not_count_it(store: Store) -> None:
    sim = load(store, 1)[0]
    register(store, OS, HUB)
    move(store, sim.phone, OS, HUB)
    poll(store, OS, NOW + 10)  # not stamped yet: its commit time is unknown
    assert number(store, sim.phone).lane == OS
    stamp(store, NOW + 20)
    poll(store, OS, NOW + 20.5)  # within the clock-skew allowance
    poll(store, HUB, NOW + 30)  # the new lane's polls change nothing
    assert number(store, sim.phone).lane == OS
    assert issue(store, HUB) is None
    poll(store, OS, NOW + 22)
    joined = number(store, sim.phone)
    assert (joined.lane, joined.lane_target, joined.lane_leaving_at) == (HUB, None, None)
    assert (count(store, OS), count(store, HUB)) == (0, 1)
    assert issue(store, OS) is None
    assert issue(store, HUB) is not None


def test_a_leaving_sim_joins_when_every_answer_counting_it_is_stale(store: Store) -> None:
    sim = load(store, 1)[0]
    register(store, OS, HUB)
    move(store, sim.phone, OS, HUB)
    stamp(store, NOW)
    policy = LanePolicy(stale_seconds=600)
    seen = store.run(lambda uow: survey(uow, NOW + 599, policy))
    store.run(lambda uow: move_lanes(uow, seen, NOW + 599, policy))
    assert number(store, sim.phone).lane == OS
    store.run(lambda uow: move_lanes(uow, seen, NOW + 601, policy))
    assert number(store, sim.phone).lane == HUB


def test_a_move_toward_a_marketplace_disabled_meanwhile_is_cancelled(store: Store) -> None:
    sim = load(store, 1)[0]
    register(store, OS, HUB)
    move(store, sim.phone, OS, HUB)
    register(store, OS)
    after = number(store, sim.phone)
    assert (after.lane, after.lane_target) == (OS, None)
    assert count(store, OS) == 1


def test_a_round_moves_free_sims_toward_demand_in_two_steps(store: Store) -> None:
    register(store, OS)
    load(store, 10)
    register(store, OS, HUB, smshub=4.0)
    policy = LanePolicy(moves=3)
    seen = store.run(lambda uow: survey(uow, NOW, policy))
    result = store.run(lambda uow: move_lanes(uow, seen, NOW, policy))
    assert len(result.marked) == 3  # bounded by the policy
    assert (count(store, OS), count(store, HUB)) == (7, 0)
    store.run(lambda uow: stamp_leaves(uow, result.marked, NOW + 1))
    poll(store, OS, NOW + 5)
    assert (count(store, OS), count(store, HUB)) == (7, 3)
    assert lanes_of(store) == {OS: 7, HUB: 3}


def test_demand_draws_sims_to_the_marketplace_that_orders(store: Store) -> None:
    register(store, OS, HUB)
    load(store, 10)
    for _ in range(5):
        operation = issue(store, HUB)
        assert operation is not None
        finish(store, operation, 5)
    policy = LanePolicy(moves=100)
    seen = store.run(lambda uow: survey(uow, NOW + 10, policy))
    assert seen.demand == {(HUB, CountryName("russia")): 5}
    result = store.run(lambda uow: move_lanes(uow, seen, NOW + 10, policy))
    # Targets: floors of 1 each, and 8 x 6/7 + 1 = 7.9 for smshub, 8 x 1/7 + 1 = 2.1 for
    # onlinesim: two SIMs move (a third would leave smshub above its target).
    assert len(result.marked) == 2


def test_a_marketplace_that_never_ordered_keeps_its_floor(store: Store) -> None:
    # SMSHUB's lane is empty (it was enabled after Onlinesim sold the whole farm a while):
    # without a floor, Onlinesim's orders would keep it empty, and its buyers could never order.
    register(store, OS)
    load(store, 20)
    for _ in range(30):
        operation = issue(store, OS)
        assert operation is not None
        finish(store, operation, 5)
    register(store, OS, HUB)
    assert lanes_of(store) == {OS: 20}
    starving = LanePolicy(moves=100, min_share=0.0)
    seen = store.run(lambda uow: survey(uow, NOW + 10, starving))
    assert store.run(lambda uow: move_lanes(uow, seen, NOW + 10, starving)).marked == []
    policy = LanePolicy(moves=100, min_share=0.25)
    seen = store.run(lambda uow: survey(uow, NOW + 10, policy))
    result = store.run(lambda uow: move_lanes(uow, seen, NOW + 10, policy))
    assert len(result.marked) == 5  # a quarter of the country's 20 SIMs


def test_a_round_moves_sims_out_of_a_lane_the_owner_no_longer_allows(store: Store) -> None:
    sim = load(store, 1)[0]
    register(store, OS, HUB)
    store.run(lambda uow: uow.numbers.upsert(make_spec(phone=sim.phone, marketplaces=frozenset({HUB})), NOW))
    policy = LanePolicy(moves=10)
    seen = store.run(lambda uow: survey(uow, NOW, policy))
    result = store.run(lambda uow: move_lanes(uow, seen, NOW, policy))
    assert result.marked == [sim.id]
    assert number(store, sim.phone).lane_target == HUB


# --- idle SIMs rotate ---------------------------------------------------------------------------


def round_at(store: Store, policy: LanePolicy, now: float, *marketplaces: str) -> list[NumberId]:
    """One balancer round at `now`, then a poll from each marketplace (its leaves join)."""
    seen = store.run(lambda uow: survey(uow, now, policy))
    marked = store.run(lambda uow: move_lanes(uow, seen, now, policy)).marked
    store.run(lambda uow: stamp_leaves(uow, [*seen.unstamped, *marked], now + 1))
    for marketplace in marketplaces:
        poll(store, marketplace, now + 3)
    return marked


def test_a_lane_of_spent_sims_gets_sims_another_lane_holds_idle(store: Store) -> None:
    # What stalled SMSHUB in the demo: every SIM of its lane sold once for every service it
    # buys (a sale excludes the number for that service forever), so it counts nothing, orders
    # nothing, and its demand leaves the window; the lanes are then at their targets.
    register(store, OS, HUB)
    load(store, 10)
    assert lanes_of(store) == {OS: 5, HUB: 5}
    for service in SERVICES:
        for _ in range(5):
            operation = issue(store, HUB, service)
            assert operation is not None
            finish(store, operation, 3, FinishPolicy())
    assert (count(store, HUB), count(store, HUB, ServiceName("vkcom"))) == (0, 0)
    policy = LanePolicy(moves=4, demand_seconds=3600, idle_seconds=3600)
    later = NOW + 4000  # the sales left the demand window; Onlinesim ordered nothing either
    for turn in range(3):
        round_at(store, policy, later + 10 * turn, OS, HUB)
    # Three rounds of two swaps (moves=4): SMSHUB sells on Onlinesim's former SIMs, its spent
    # ones went to Onlinesim (which may still rent them); the targets did not move.
    assert lanes_of(store) == {OS: 5, HUB: 5}
    assert count(store, HUB) == 5
    assert issue(store, HUB) is not None
    # What arrived is not idle: the next round swaps nothing back.
    assert round_at(store, policy, later + 100, OS, HUB) == []


def test_idle_sims_leave_first_then_the_last_issued(store: Store) -> None:
    sims = load(store, 3)  # Onlinesim alone: all in its lane
    register(store, OS, HUB)
    for at in (NOW, NOW + 2):  # GET_NUMBER takes the longest unissued: sims[0], then sims[1]
        operation = store.run(lambda uow, at=at: issue_number(uow, OS, make_order(), at))  # type: ignore[misc]
        assert operation is not None
        finish(store, operation, 5)
    groups = store.run(lambda uow: uow.lanes.groups(NOW + 1))
    assert [(g.lane, g.movable, g.idle) for g in groups] == [(OS, 3, 2)]
    russia = sims[0].country

    def mark(at: float, idle_before: float, only_idle: bool = False) -> list[NumberId]:
        move = Move(russia, frozenset(), OS, HUB, 1, idle_before, only_idle)
        return store.run(lambda uow: uow.lanes.mark_leaving(move, at))

    assert mark(NOW + 5, NOW - 10) == [sims[2].id]  # never issued: idle
    # Then the last issued: its lane (which issues its longest unissued first) is least
    # likely to take it back before the move completes.
    assert mark(NOW + 6, NOW - 10) == [sims[1].id]
    assert mark(NOW + 7, NOW - 10, only_idle=True) == []  # sims[0] was issued at NOW
    assert mark(NOW + 8, NOW + 1, only_idle=True) == [sims[0].id]


# --- the sale ledger --------------------------------------------------------------------------


def both_lanes_one_sim(store: Store) -> Number:
    """One SIM, which the test moves between lanes itself."""
    sim = load(store, 1)[0]
    register(store, OS, HUB)
    return sim


def hop(store: Store, sim: Number, source: str, target: str, at: float) -> None:
    move(store, sim.phone, source, target)
    stamp(store, at)
    poll(store, source, at + 2)
    assert number(store, sim.phone).lane == target


def test_a_sale_anywhere_removes_the_service_everywhere(store: Store) -> None:
    sim = both_lanes_one_sim(store)
    operation = issue(store, OS)
    assert operation is not None
    finish(store, operation, 3, FinishPolicy())
    hop(store, sim, OS, HUB, NOW + 10)
    assert count(store, HUB) == 0
    assert count(store, HUB, ServiceName("vkcom")) == 1
    assert issue(store, HUB) is None
    exclusions = store.run(lambda uow: uow.numbers.excluded_services(sim.id, HUB))
    assert exclusions == {TELEGRAM}


def test_agent_status_1_removes_the_service_everywhere(store: Store) -> None:
    sim = both_lanes_one_sim(store)
    hop(store, sim, OS, HUB, NOW + 10)
    operation = issue(store, HUB)
    assert operation is not None
    finish(store, operation, 1)
    hop(store, sim, HUB, OS, NOW + 20)
    assert count(store, OS) == 0
    assert issue(store, OS) is None


def test_onlinesim_status_1_blocks_nothing(store: Store) -> None:
    load(store, 1)
    operation = issue(store, OS)
    assert operation is not None
    finish(store, operation, 1, FinishPolicy())
    assert count(store, OS) == 1


def test_status_4_allows_three_more_offers_on_that_marketplace_only(store: Store) -> None:
    sim = both_lanes_one_sim(store)
    hop(store, sim, OS, HUB, NOW + 10)
    for attempt in range(4):
        assert count(store, HUB) == 1, attempt
        operation = issue(store, HUB)
        assert operation is not None, attempt
        finish(store, operation, 4)
    assert count(store, HUB) == 0
    assert issue(store, HUB) is None
    assert count(store, HUB, ServiceName("vkcom")) == 1
    hop(store, sim, HUB, OS, NOW + 20)
    assert count(store, OS) == 1  # the budget is SMSHUB's alone
    # A later sale elsewhere goes beside the scoped exclusion (migration 0021): counts
    # subtract the pair once.
    operation = issue(store, OS)
    assert operation is not None
    finish(store, operation, 3, FinishPolicy())
    reports = store.run_report(lambda r: r.number(sim.id))
    assert reports is not None
    assert [(e.service, e.reason, e.marketplace) for e in reports.exclusions] == [
        (TELEGRAM, "sold", EVERYWHERE),
        (TELEGRAM, "retries", HUB),
    ]
    hop(store, sim, OS, HUB, NOW + 30)
    assert count(store, HUB) == 0
    assert count(store, HUB, ServiceName("vkcom")) == 1
    assert store.run(lambda uow: uow.numbers.count_drift()) == []


def test_operations_keep_their_currency(store: Store) -> None:
    load(store, 1)
    order = make_order(currency="USD")
    operation = store.run(lambda uow: issue_number(uow, OS, order, NOW))
    assert operation is not None
    assert operation.currency == "USD"
    stored = store.run(lambda uow: uow.operations.get(OperationId(operation.id)))
    assert stored is not None
    assert stored.currency == "USD"


def test_record_poll_remembers_the_newest_answer(store: Store) -> None:
    register(store, OS, HUB)
    poll(store, HUB, NOW + 5)
    poll(store, HUB, NOW + 3)  # a late record of an older answer
    found = {m.name: m for m in store.run(lambda uow: uow.lanes.marketplaces())}
    assert found[HUB].last_services_at == NOW + 5
    assert found[OS].last_services_at is None


def test_a_spec_names_its_marketplaces(store: Store) -> None:
    spec = NumberSpec(PhoneNumber("79990000001"), CountryName("russia"), make_spec().operator)
    store.run(lambda uow: uow.numbers.upsert(spec, NOW))
    changed = NumberSpec(spec.phone, spec.country, spec.operator, marketplaces=frozenset({HUB, OS}))
    assert store.run(lambda uow: uow.numbers.upsert(changed, NOW)) == "updated"
    assert number(store, spec.phone).marketplaces == {HUB, OS}
    assert store.run(lambda uow: uow.numbers.upsert(changed, NOW)) == "unchanged"


@pytest.mark.parametrize("status", [3, 1])
def test_a_scoped_exclusion_under_a_global_one_is_kept_and_counted_once(store: Store, status: int) -> None:
    """Kept, so no later change to the global row can lose it (migration 0021)."""
    sim = load(store, 1)[0]
    operation = issue(store, OS)
    assert operation is not None
    finish(store, operation, status)
    store.run(lambda uow: uow.numbers.exclude(sim.id, TELEGRAM, "retries", NOW, marketplace=OS))
    reports = store.run_report(lambda r: r.number(sim.id))
    assert reports is not None
    assert [e.marketplace for e in reports.exclusions] == [EVERYWHERE, OS]
    assert count(store, OS) == 0
    assert count(store, OS, ServiceName("vkcom")) == 1
    assert store.run(lambda uow: uow.numbers.count_drift()) == []
