"""The copied group and freeness on exclusion rows (migration 0004) never drift from the numbers.

Random histories of every change that moves a number in or out of "free", or between groups,
are applied to each store; after each, excluded_counts and group_counts must equal what the
domain rules compute from the numbers themselves.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgate.domain import rules
from simgate.domain.model import FinishStatus
from simgate.domain.read_model import NumberQuery
from simgate.domain.types import OperatorName, ServiceName
from simgate.services.operations import finish_operation, issue_number
from simgate.storage.ports import Store, UnitOfWork
from tests.factories import make_order, make_spec

SERVICES = [ServiceName(s) for s in ("telegram", "vkcom", "whatsapp")]
OPERATORS = [OperatorName(o) for o in ("beeline", "mts", "")]

steps = st.lists(
    st.tuples(
        st.sampled_from(["exclude", "disable", "enable", "offline", "online", "issue", "finish", "move"]),
        st.integers(0, 5),
        st.integers(0, 2),
    ),
    max_size=25,
)


def expected(uow: UnitOfWork) -> tuple[Counter[tuple[str, str, str]], Counter[tuple[str, str]]]:
    excluded: Counter[tuple[str, str, str]] = Counter()
    free: Counter[tuple[str, str]] = Counter()
    for number in uow.numbers.search(NumberQuery(limit=10_000)):
        free[(number.country, number.operator)] += rules.is_free(number)
        if rules.is_free(number):
            for service in uow.numbers.excluded_services(number.id):
                excluded[(number.country, number.operator, service)] += 1
    return excluded, free


def apply(uow: UnitOfWork, step: tuple[str, int, int], specs: list, now: float) -> None:
    action, which, arg = step
    spec = specs[which]
    number = uow.numbers.get_by_phone(spec.phone)
    assert number is not None
    if action == "exclude":
        uow.numbers.exclude(number.id, SERVICES[arg], "sold", now)
    elif action in ("disable", "enable"):
        uow.numbers.set_enabled(number.id, action == "enable", now)
    elif action in ("offline", "online"):
        uow.numbers.set_online(number.phone, action == "online", now)
    elif action == "issue" and rules.is_free(number):
        issue_number(uow, "onlinesim", make_order(service=SERVICES[arg], country=number.country), now)
    elif action == "finish" and number.open_operation_id is not None:
        finish_operation(uow, "onlinesim", number.open_operation_id, FinishStatus.SOLD, None, now)
    elif action == "move":
        specs[which] = make_spec(phone=spec.phone, operator=OPERATORS[arg])
        uow.numbers.upsert(specs[which], now)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=steps)
def test_exclusion_and_group_counts_follow_every_change(store: Store, history: list) -> None:
    specs = [make_spec(operator=OPERATORS[i % 3]) for i in range(6)]

    def scenario(uow: UnitOfWork) -> None:
        now = time.time()
        for spec in specs:
            uow.numbers.upsert(spec, now)
        for step in history:
            apply(uow, step, specs, now)
            excluded, free = expected(uow)
            got_excluded = Counter(
                {(r.country, r.operator, r.service): r.excluded for r in uow.numbers.excluded_counts()}
            )
            got_free = Counter({(g.country, g.operator): g.free for g in uow.numbers.group_counts()})
            assert +got_excluded == +excluded, step
            assert +got_free == +free, step
        raise Rollback  # leave the store empty for the next example

    with contextlib.suppress(Rollback):
        store.run(scenario)


class Rollback(Exception):
    pass
