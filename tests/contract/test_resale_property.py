"""The property behind resale windows and exclusion groups, on every store.

Random histories of GET_SERVICES, GET_NUMBER, FINISH (sales among them), rebalancing rounds
and pauses of hours to months, across four marketplaces (onlinesim, smshub, grizzly, herosms)
on SIMs every one of them may sell. After every step, checked against the test's own ledger
(not the domain's code): no number is issued, and none counted, where HeroSMS's 60-day window
(either way) or an exclusion group forbids it, or for a service it was sold for.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from simgate.domain import lanes
from simgate.domain.ledger import DAY, ExclusionGroup, LedgerRules, ResaleRule
from simgate.domain.model import FinishPolicy, NumberSpec, Operation, OperationKind, Order
from simgate.domain.read_model import NumberQuery
from simgate.domain.types import ANY_OPERATOR, CountryName, OperatorName, PhoneNumber, ServiceName
from simgate.services.inventory import import_numbers
from simgate.services.lanes import LanePolicy, move_lanes, register_marketplaces, stamp_leaves, survey
from simgate.services.operations import finish_operation, issue_number, list_available, record_poll
from simgate.storage.ports import Store, UnitOfWork

OS, HUB, GRIZZLY, HERO = "onlinesim", "smshub", "grizzly", "herosms"
FOUR = (OS, HUB, GRIZZLY, HERO)
AGENT = FinishPolicy(refuse_statuses=frozenset({1}), retry_budget_status=4, retry_budget=3)
POLICIES = {OS: FinishPolicy(), HUB: AGENT, GRIZZLY: AGENT, HERO: AGENT}
WHATSAPP, ASTROPAY, TELEGRAM = ServiceName("whatsapp"), ServiceName("astropay"), ServiceName("telegram")
SERVICES = (WHATSAPP, ASTROPAY, TELEGRAM)
GROUP = frozenset({WHATSAPP, ASTROPAY})
WINDOW = 60 * DAY
LEDGER = LedgerRules(resale=(ResaleRule(HERO, WINDOW),), groups=(ExclusionGroup("whatsapp+astropay", GROUP),))
ROUND = LanePolicy(moves=100)
PAUSES = (0.0, 5.0, 3600.0, 10 * DAY, WINDOW - 1, WINDOW + 1)
_examples = itertools.count(1)


@dataclass
class World:
    store: Store
    country: CountryName
    now: float
    prefix: str
    sims: int
    sales: list[tuple[PhoneNumber, str, ServiceName, float]] = field(default_factory=list)
    refused: set[tuple[PhoneNumber, ServiceName]] = field(default_factory=set)
    open: dict[int, Operation] = field(default_factory=dict)

    def forbidden(self, phone: PhoneNumber, market: str, service: ServiceName) -> str | None:
        """The test's own reading of the terms: why `phone` must not be offered there now."""
        if (phone, service) in self.refused:
            return "refused"
        for sold, where, what, at in self.sales:
            if sold != phone:
                continue
            if what == service:
                return "sold for it"
            if what in GROUP and service in GROUP:
                return "group"
            if at > self.now - WINDOW and where != market and HERO in (where, market):
                return f"window of a sale on {where}"
        return None

    def get_services(self, market: str) -> None:
        asked_at = self.now
        answer = self.store.run(lambda uow: list_available(uow, market, SERVICES, now=asked_at))
        told = next((c.operator_map.get("any", {}) for c in answer if c.country == self.country), {})

        def offerable(uow: UnitOfWork) -> dict[ServiceName, int]:
            free = uow.numbers.search(NumberQuery(state="free", country=self.country, limit=10_000))
            counted = [n for n in free if lanes.counted_by(n, market)]
            return {
                s: sum(1 for n in counted if self.forbidden(n.phone, market, s) is None) for s in SERVICES
            }

        allowed = self.store.run(offerable)
        for service in SERVICES:
            assert told.get(service, 0) <= allowed[service], (market, service, told, allowed, self.sales)
        self.store.run(lambda uow: record_poll(uow, market, asked_at))

    def get_number(self, market: str, service: ServiceName) -> None:
        order = Order(OperationKind.ACTIVATION, self.country, ANY_OPERATOR, service)
        now = self.now
        operation = self.store.run(lambda uow: issue_number(uow, market, order, now))
        if operation is None:
            return
        why = self.forbidden(operation.phone, market, service)
        assert why is None, f"{operation.phone} issued on {market} for {service}: {why}"
        self.open[operation.id] = operation

    def finish(self, index: int, status: int) -> None:
        if not self.open:
            return
        operation = self.open.pop(sorted(self.open)[index % len(self.open)])
        market, now = operation.marketplace, self.now
        self.store.run(
            lambda uow: finish_operation(uow, market, operation.id, status, None, now, POLICIES[market])
        )
        assert operation.service is not None
        if status == 3:
            self.sales.append((operation.phone, market, operation.service, now))
        elif status == 1 and market != OS:
            # A refusal hides that service everywhere (L7), and opens no window, no group.
            self.refused.add((operation.phone, operation.service))

    def pin(self, index: int, market: str) -> None:
        """The owner's CSV now allows one SIM only on `market`: the next rounds move it there
        (the way a SIM sold on one marketplace reaches another's lane)."""
        phone = PhoneNumber(f"{self.prefix}{index % self.sims:04d}")
        spec = NumberSpec(phone, self.country, OperatorName("beeline"), marketplaces=frozenset({market}))
        now = self.now
        self.store.run(lambda uow: import_numbers(uow, [spec], now))

    def rebalance(self) -> None:
        now = self.now
        seen = self.store.run(lambda uow: survey(uow, now, ROUND))
        result = self.store.run(lambda uow: move_lanes(uow, seen, now, ROUND))
        self.store.run(lambda uow: stamp_leaves(uow, [*seen.unstamped, *result.marked], now))


steps = st.lists(
    st.tuples(
        st.sampled_from(
            ["services", "number", "number", "finish", "finish", "rebalance", "rebalance", "pin"]
        ),
        st.sampled_from(FOUR),
        st.integers(0, 7),
        st.sampled_from([1, 3, 3, 3, 4, 5]),
        st.sampled_from(PAUSES),
    ),
    min_size=1,
    max_size=40,
)


# The paths that cross a window, always tried besides the random ones: sold on HeroSMS, then
# moved to SMSHUB's lane; sold on Grizzly, then moved to HeroSMS's.
@example(sims=1, history=[
    ("pin", HERO, 0, 3, 5.0), ("rebalance", HUB, 0, 3, 3600.0), ("rebalance", HUB, 0, 3, 5.0),
    ("number", HERO, 0, 3, 5.0), ("finish", HERO, 0, 3, 5.0), ("pin", HUB, 0, 3, 5.0),
    ("rebalance", HUB, 0, 3, 3600.0), ("rebalance", HUB, 0, 3, 5.0), ("services", HUB, 2, 3, 5.0),
    ("number", HUB, 2, 3, WINDOW), ("number", HUB, 2, 3, 5.0),
])  # fmt: skip
@example(sims=1, history=[
    ("pin", GRIZZLY, 0, 3, 5.0), ("rebalance", HUB, 0, 3, 3600.0), ("rebalance", HUB, 0, 3, 5.0),
    ("number", GRIZZLY, 0, 3, 5.0), ("finish", HERO, 0, 3, 5.0), ("pin", HERO, 0, 3, 5.0),
    ("rebalance", HUB, 0, 3, 3600.0), ("rebalance", HUB, 0, 3, 5.0), ("services", HERO, 2, 3, 5.0),
    ("number", HERO, 2, 3, 10 * DAY), ("number", HERO, 2, 3, WINDOW), ("number", HERO, 2, 3, 5.0),
])  # fmt: skip
@given(sims=st.integers(1, 5), history=steps)
@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_number_is_offered_where_a_resale_window_or_a_group_forbids_it(
    store: Store, sims: int, history: list[tuple[str, str, int, int, float]]
) -> None:
    example = next(_examples)
    store.ledger = LEDGER
    prefix = f"7{example:06d}"
    world = World(
        store, CountryName(f"resaleland-{example}"), 1_700_000_000.0 + example * 1000 * DAY, prefix, sims
    )
    store.run(lambda uow: register_marketplaces(uow, FOUR, world.now))
    specs = [
        NumberSpec(PhoneNumber(f"{prefix}{i:04d}"), world.country, OperatorName("beeline"))
        for i in range(sims)
    ]
    store.run(lambda uow: import_numbers(uow, specs, world.now))
    store.run(lambda uow: register_marketplaces(uow, FOUR, world.now))
    for action, market, index, status, pause in history:
        if action == "services":
            world.get_services(market)
        elif action == "number":
            world.get_number(market, SERVICES[index % len(SERVICES)])
        elif action == "finish":
            world.finish(index, status)
        elif action == "pin":
            world.pin(index, market)
        else:
            world.rebalance()
        world.now += pause
