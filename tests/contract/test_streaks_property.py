"""The no-SMS streaks kept on each SIM (migration 0025) equal domain.read_model.streaks over its
whole history, and their run starts (0026) domain.read_model.run_starts, on every store, after
a random history of GET_NUMBER, SMS and FINISH; and the losing filter, which counts its window
only for the SIMs those streaks pick and their starts do not settle, still flags exactly the
SIMs the window's own streaks flag.

The steps: activations (each for a service of its own, so a sale excludes nothing the history
needs) and rents, SMS to a SIM (routed to its open operation if it has one, else stored
without one: it must not restart a streak), FINISH with a sale, a cancellation or a refund,
and a resent FINISH (which must not count twice). Each step is its own unit of work, at a
later time than the last, as the server stamps them.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgate.domain.messages import IncomingMessage
from simgate.domain.model import Operation, OperationKind
from simgate.domain.read_model import NumberQuery, loss_reasons, run_starts, streaks
from simgate.domain.types import CountryName, NumberId, OperationId, PhoneNumber, ServiceName, Timestamp
from simgate.services.intake import accept_sms
from simgate.services.inventory import import_numbers
from simgate.services.operations import finish_operation, issue_number
from simgate.storage.ports import Store
from tests.factories import make_order, make_spec

MARKET = "onlinesim"
DAY = 86400.0
STEP = 600.0
_examples = itertools.count(1)

steps = st.lists(
    st.tuples(
        st.sampled_from(["activation", "rent", "sms", "sms", "finish", "finish", "finish", "resend"]),
        st.integers(0, 11),
        st.sampled_from([3, 4, 5]),
    ),
    min_size=1,
    max_size=40,
)


def windowed(finished: list[Operation], got_sms: set[OperationId], since: Timestamp | None) -> set[NumberId]:
    """The SIMs loss_reasons flags over the operations opened since `since`, by the domain rule."""
    recent = [o for o in sorted(finished, key=lambda o: o.id) if since is None or o.opened_at >= since]
    found = streaks((o.number_id, o.kind, o.id in got_sms) for o in recent)
    return {number_id for number_id, streak in found.items() if loss_reasons(*streak)}


@given(sims=st.integers(1, 4), history=steps, cut=st.integers(0, 40))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_kept_streaks_equal_the_domain_rule_over_all_history(
    store: Store, sims: int, history: list[tuple[str, int, int]], cut: int
) -> None:
    example = next(_examples)
    start = 1_700_000_000.0 + example * 10 * DAY
    country = CountryName(f"streakland-{example}")
    specs = [make_spec(phone=PhoneNumber(f"7{example:06d}{i:04d}"), country=country) for i in range(sims)]
    store.run(lambda uow: import_numbers(uow, specs, start))
    ids = [n.id for n in store.run(lambda uow: uow.numbers.search(NumberQuery(country=country)))]
    open_ops: list[Operation] = []
    finished: list[Operation] = []
    got_sms: set[OperationId] = set()
    for k, (action, index, status) in enumerate(history):
        now = start + STEP * (k + 1)
        if action in ("activation", "rent"):
            kind = OperationKind.RENT if action == "rent" else OperationKind.ACTIVATION
            service = None if action == "rent" else ServiceName(f"service{k}")
            order = make_order(kind=kind, country=country, service=service)
            operation = store.run(lambda uow: issue_number(uow, MARKET, order, now))
            if operation is not None:
                open_ops.append(operation)
        elif action == "sms":
            phone = specs[index % sims].phone
            incoming = IncomingMessage(phone, "Sender", f"code {k}", message_key=f"e{example}-{k}")
            accepted = store.run(lambda uow: accept_sms(uow, incoming, now))
            if accepted.message.operation_id is not None:
                got_sms.add(accepted.message.operation_id)
        elif action == "finish" and open_ops:
            operation = open_ops.pop(index % len(open_ops))
            store.run(lambda uow: finish_operation(uow, MARKET, operation.id, status, None, now))
            finished.append(operation)
        elif action == "resend" and finished:
            again = finished[index % len(finished)]
            store.run(lambda uow: finish_operation(uow, MARKET, again.id, status, None, now))

    ordered = sorted(finished, key=lambda o: o.id)
    expected = streaks((o.number_id, o.kind, o.id in got_sms) for o in ordered)
    kept = store.run(lambda uow: uow.numbers.no_sms_streaks(ids))
    assert kept == {number_id: expected.get(number_id, (0, 0)) for number_id in ids}
    # Each run's start (migration 0026): the opened_at of the first operation the streak counts.
    starts = run_starts((o.number_id, o.kind, o.id in got_sms, o.opened_at) for o in ordered)
    kept_starts = store.run(lambda uow: uow.numbers.no_sms_since(ids))
    assert kept_starts == {number_id: starts.get(number_id, (None, None)) for number_id in ids}
    # The losing filter answers as the window's own count does: all history, a window that
    # starts somewhere in it (older failures drop out of the streaks), and windows starting
    # exactly at each operation's opening and just after it: before, at the start of, inside
    # and after each run (the kept starts settle some SIMs, the window's count the others).
    edges = sorted({t for o in finished for t in (o.opened_at, o.opened_at + 1)})
    for since in (None, start + STEP * cut, *edges):
        query = NumberQuery(country=country, losing=True, streak_since=since)
        page = store.run_report(lambda r, q=query: r.numbers(q))  # type: ignore[misc]
        assert {row.number.id for row in page.items} == windowed(finished, got_sms, since), since
