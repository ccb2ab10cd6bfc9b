"""The property behind "one SIM, one buyer at a time", on every store.

Random interleavings of GET_SERVICES (with its record_poll), GET_NUMBER, FINISH and
rebalancing rounds from two or three marketplaces. After every step:

- no number is held by two operations, and none is issued for a service it was sold or
  refused for (anywhere), or whose status-4 budget on that marketplace is spent;
- what a marketplace was last told is still issuable to it, less what it took since;
- what all marketplaces were told, less what each took since, never exceeds the free SIMs.

Hypothesis runs many examples on one store, so each example sells SIMs of a country of its own.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgate.domain.model import FinishPolicy, NumberSpec, Operation, OperationKind, Order
from simgate.domain.read_model import NumberQuery
from simgate.domain.types import ANY_OPERATOR, CountryName, OperatorName, PhoneNumber, ServiceName
from simgate.services.inventory import import_numbers
from simgate.services.lanes import LanePolicy, move_lanes, register_marketplaces, stamp_leaves, survey
from simgate.services.operations import finish_operation, issue_number, list_available, record_poll
from simgate.storage.ports import Store, UnitOfWork

OS, HUB, GRIZZLY = "onlinesim", "smshub", "grizzly"
AGENT = FinishPolicy(refuse_statuses=frozenset({1}), retry_budget_status=4, retry_budget=3)
POLICIES = {OS: FinishPolicy(), HUB: AGENT, GRIZZLY: AGENT}
SERVICES = (ServiceName("telegram"), ServiceName("vkcom"))
# Idle after 2 s (pauses are 0-3 s): rounds rotate idle SIMs too.
ROUND = LanePolicy(moves=100, idle_seconds=2.0)
_examples = itertools.count(1)


@dataclass
class World:
    """What the marketplaces were told and did, to hold the store to it."""

    store: Store
    country: CountryName
    markets: tuple[str, ...]
    now: float
    told: dict[str, dict[ServiceName, int]] = field(default_factory=dict)
    taken_since: Counter[str] = field(default_factory=Counter)
    open: dict[int, Operation] = field(default_factory=dict)
    sold: set[tuple[str, ServiceName]] = field(default_factory=set)
    retries: Counter[tuple[str, ServiceName, str]] = field(default_factory=Counter)

    def order(self, service: ServiceName) -> Order:
        return Order(OperationKind.ACTIVATION, self.country, ANY_OPERATOR, service)

    def get_services(self, market: str, *, round_between: bool = False) -> None:
        """The answer, then the handler's record_poll; with `round_between`, a rebalancing
        round commits in between: the race the leave stamp guards against."""
        asked_at = self.now
        answer = self.store.run(lambda uow: list_available(uow, market, SERVICES))
        mine = next((c.operator_map.get("any", {}) for c in answer if c.country == self.country), {})
        self.told[market] = {s: mine.get(s, 0) for s in SERVICES}
        self.taken_since[market] = 0
        if round_between:
            self.now += 0.5
            self.rebalance()
        self.store.run(lambda uow: record_poll(uow, market, asked_at))

    def get_number(self, market: str, service: ServiceName) -> None:
        order, now = self.order(service), self.now
        operation = self.store.run(lambda uow: issue_number(uow, market, order, now))
        if operation is None:
            return
        assert all(o.phone != operation.phone for o in self.open.values()), "one SIM, two buyers"
        assert (operation.phone, service) not in self.sold, "issued for a service it was sold for"
        assert self.retries[(operation.phone, service, market)] < 4, "status-4 budget spent"
        self.open[operation.id] = operation
        self.taken_since[market] += 1

    def finish(self, index: int, status: int) -> None:
        if not self.open:
            return
        operation = self.open.pop(sorted(self.open)[index % len(self.open)])
        market, now = operation.marketplace, self.now
        self.store.run(
            lambda uow: finish_operation(uow, market, operation.id, status, None, now, POLICIES[market])
        )
        assert operation.service is not None
        if status == 3 or status in POLICIES[market].refuse_statuses:
            self.sold.add((operation.phone, operation.service))
        elif status == 4 and market != OS:
            self.retries[(operation.phone, operation.service, market)] += 1

    def rebalance(self) -> None:
        now = self.now
        seen = self.store.run(lambda uow: survey(uow, now, ROUND))
        result = self.store.run(lambda uow: move_lanes(uow, seen, now, ROUND))
        # The stamp's clock is read after the marks committed, as LaneBalancer does.
        self.store.run(lambda uow: stamp_leaves(uow, [*seen.unstamped, *result.marked], now))

    def drain(self, market: str, service: ServiceName) -> int:
        """How many `market` can be issued for `service` now (rolled back)."""
        order, now = self.order(service), self.now

        class Drained(Exception):
            pass

        issued: list[int] = []

        def work(uow: UnitOfWork) -> None:
            while issue_number(uow, market, order, now) is not None:
                issued.append(1)
                assert len(issued) <= 50
            raise Drained

        with pytest.raises(Drained):
            self.store.run(work)
        return len(issued)

    def free_for(self, service: ServiceName) -> int:
        def work(uow: UnitOfWork) -> int:
            numbers = uow.numbers.search(NumberQuery(state="free", limit=100_000))
            return sum(
                1
                for n in numbers
                if n.country == self.country and service not in uow.numbers.excluded_services(n.id)
            )

        return self.store.run(work)

    def check(self) -> None:
        for service in SERVICES:
            outstanding = 0
            for market, told in self.told.items():
                owed = max(0, told[service] - self.taken_since[market])
                assert self.drain(market, service) >= owed, (market, service, told, self.taken_since)
                outstanding += owed
            assert outstanding <= self.free_for(service), (service, self.told, self.taken_since)


steps = st.lists(
    st.tuples(
        st.sampled_from(["services", "raced", "number", "number", "finish", "rebalance"]),
        st.integers(0, 2),
        st.integers(0, 7),
        st.sampled_from([1, 3, 4, 4, 5]),
        st.floats(0, 3),
    ),
    min_size=1,
    max_size=20,
)


@given(
    markets=st.sampled_from([(OS, HUB), (HUB, GRIZZLY), (OS, HUB, GRIZZLY)]),
    allowed=st.lists(st.frozensets(st.sampled_from([OS, HUB, GRIZZLY]), max_size=2), min_size=1, max_size=7),
    weights=st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=3, max_size=3),
    history=steps,
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_interleavings_from_several_marketplaces_keep_one_buyer_and_honest_counts(
    store: Store,
    markets: tuple[str, ...],
    allowed: list[frozenset[str]],
    weights: list[float],
    history: list[tuple[str, int, int, int, float]],
) -> None:
    example = next(_examples)
    world = World(store, CountryName(f"laneland-{example}"), markets, 1_700_000_000.0 + example * 10_000)
    tilted = dict(zip(markets, weights, strict=False))
    store.run(lambda uow: register_marketplaces(uow, markets, world.now, weights=dict.fromkeys(markets, 1.0)))
    specs = [
        NumberSpec(
            PhoneNumber(f"7{example:06d}{i:04d}"), world.country, OperatorName("beeline"), marketplaces=a
        )
        for i, a in enumerate(allowed)
    ]
    store.run(lambda uow: import_numbers(uow, specs, world.now))
    # Placed by equal weights, then told others: the first round has SIMs to move.
    store.run(lambda uow: register_marketplaces(uow, markets, world.now, weights=tilted))
    for market in markets:  # every marketplace polls first, as it does at start
        world.get_services(market, round_between=True)
    for action, which, index, status, pause in history:
        market = markets[which % len(markets)]
        if action in ("services", "raced"):
            world.get_services(market, round_between=action == "raced")
        elif action == "number":
            world.get_number(market, SERVICES[index % len(SERVICES)])
        elif action == "finish":
            world.finish(index, status)
        else:
            world.rebalance()
        world.now += pause
        world.check()
