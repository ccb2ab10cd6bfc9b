"""The console's read-only reports: one contract for the in-memory fake and the SQL stores.

Every test builds the same small farm through the real use cases (GET_NUMBER, SMS intake,
push attempts, FINISH) on each backend, then reads it back through the read model (`store.run_report`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from simgate.domain.messages import Attempt, IncomingMessage, Verdict
from simgate.domain.model import Number, Operation, OperationKind, Order
from simgate.domain.read_model import (
    BLOCKED,
    SOLD,
    DeliveryQuery,
    Exclusion,
    MessageQuery,
    NumberQuery,
    OperationQuery,
    Stats,
    StatusCount,
    loss_reasons,
    streaks,
)
from simgate.domain.types import (
    CountryName,
    Kopecks,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from simgate.services.intake import accept_sms
from simgate.services.operations import finish_operation, issue_number, list_available
from simgate.storage.ports import Store, UnitOfWork
from tests.factories import make_order, make_spec

DAY = 86400.0
DAY0 = 1_699_920_000.0
"""A UTC midnight."""
T = DAY0 + 3600
MARKET = "onlinesim"
WORKER = "test-worker"
TELEGRAM, VK, WHATSAPP = ServiceName("telegram"), ServiceName("vkcom"), ServiceName("whatsapp")


@dataclass
class Farm:
    a: Number
    b: Number
    c: Number
    d: Number
    ops: dict[str, Operation]
    deliveries: dict[str, int]


def _issue(uow: UnitOfWork, order: Order, now: float) -> Operation:
    operation = issue_number(uow, MARKET, order, now)
    assert operation is not None
    return operation


def _sms(uow: UnitOfWork, phone: str, text: str, now: float) -> None:
    accept_sms(uow, IncomingMessage(PhoneNumber(phone), "Sender", text, message_key=text), now)


def _push(uow: UnitOfWork, now: float, verdict: Verdict, state: str, status: int, reason: str | None) -> int:
    (item,) = uow.outbox.claim_due(WORKER, now, 30.0, 10)
    attempt = Attempt(now, 12.5, status, '{"status":"x"}', None, verdict)
    uow.outbox.record(item.id, WORKER, attempt, state, now + 10, reason)
    return item.id


def build(store: Store) -> Farm:
    def work(uow: UnitOfWork) -> Farm:
        specs = {
            "a": make_spec(operator=OperatorName("beeline"), port="goip1/1"),
            "b": make_spec(operator=OperatorName("mts"), port="goip1/2"),
            "c": make_spec(country=CountryName("germany"), phone=PhoneNumber("4915112345678"),
                           operator=OperatorName("vodafone"), port="goip2/1", enabled=False),
            "d": make_spec(operator=OperatorName("beeline"), port="goip2/2"),
        }  # fmt: skip
        for spec in specs.values():
            uow.numbers.upsert(spec, T - 100)
        uow.numbers.set_online(specs["d"].phone, False, T - 50)
        n = {k: uow.numbers.get_by_phone(s.phone) for k, s in specs.items()}
        beeline, mts = OperatorName("beeline"), OperatorName("mts")
        ops: dict[str, Operation] = {}
        deliveries: dict[str, int] = {}
        # Day 0: a telegram activation on A gets its SMS, is pushed and sold for 12.50.
        ops["op1"] = _issue(uow, make_order(operator=beeline, service=TELEGRAM, offered=Kopecks(1000)), T)
        _sms(uow, ops["op1"].phone, "telegram 11111", T + 10)
        deliveries["d1"] = _push(uow, T + 20, Verdict.DELIVERED, "delivered", 200, None)
        finish_operation(uow, MARKET, ops["op1"].id, 3, Kopecks(1250), T + 100)
        # Day 1: a vk activation on A gets nothing; three rents on B get nothing.
        ops["op2"] = _issue(uow, make_order(operator=beeline, service=VK, offered=Kopecks(800)), T + DAY)
        finish_operation(uow, MARKET, ops["op2"].id, 4, None, T + DAY + 900)
        for k in range(3):
            opened = T + DAY + 2000 * k
            rent = make_order(kind=OperationKind.RENT, operator=mts, offered=Kopecks(5000))
            ops[f"rent{k}"] = _issue(uow, rent, opened)
            finish_operation(uow, MARKET, ops[f"rent{k}"].id, 4, None, opened + 1200)
        # Day 2: a rent on A (open) whose SMS is refused; an SMS to offline D goes nowhere;
        # a whatsapp activation on B whose push is still being retried, sold at the offer.
        ops["op6"] = _issue(uow, make_order(kind=OperationKind.RENT, operator=beeline), T + 2 * DAY)
        _sms(uow, ops["op6"].phone, "rent 22222", T + 2 * DAY + 60)
        deliveries["d2"] = _push(uow, T + 2 * DAY + 70, Verdict.REJECTED, "rejected", 200, "NO_OPERATION")
        _sms(uow, specs["d"].phone, "stray 33333", T + 2 * DAY + 100)
        ops["op7"] = _issue(
            uow, make_order(operator=mts, service=WHATSAPP, offered=Kopecks(900)), T + 2 * DAY + 200
        )
        _sms(uow, ops["op7"].phone, "whatsapp 44444", T + 2 * DAY + 300)
        deliveries["d3"] = _push(uow, T + 2 * DAY + 310, Verdict.RETRY, "pending", 500, None)
        finish_operation(uow, MARKET, ops["op7"].id, 3, None, T + 2 * DAY + 400)
        uow.operations.note_finish_request(ops["op7"].id)  # a resent FINISH
        numbers = {k: v for k, v in n.items() if v is not None}
        return Farm(numbers["a"], numbers["b"], numbers["c"], numbers["d"], ops, deliveries)

    return store.run(work)


@pytest.fixture
def farm(store: Store) -> Farm:
    return build(store)


def read(store: Store, work):  # type: ignore[no-untyped-def]
    return store.run_report(work)


# -- numbers -----------------------------------------------------------------------------


def test_number_rows_carry_operations_earnings_sms_and_streaks(store: Store, farm: Farm) -> None:
    page = read(store, lambda r: r.numbers(NumberQuery()))
    assert page.total == 4
    by_phone = {row.number.phone: row for row in page.items}
    a, b = by_phone[farm.a.phone], by_phone[farm.b.phone]
    assert (a.number.state, a.operations, a.finished, a.sold, a.earnings) == ("busy", 3, 2, 1, 1250)
    assert (a.sms, a.last_sms_at) == (2, T + 2 * DAY + 60)
    assert a.exclusions == (Exclusion(TELEGRAM, SOLD),)
    assert (a.rent_no_sms_streak, a.activation_no_sms_streak) == (0, 1)
    assert a.success_rate == 0.5
    assert a.loss_reasons == ()
    assert (b.number.state, b.operations, b.finished, b.sold, b.earnings, b.sms) == ("free", 4, 4, 1, 900, 1)
    assert (b.rent_no_sms_streak, b.activation_no_sms_streak) == (3, 0)
    assert b.loss_reasons == loss_reasons(3, 0)
    assert b.loss_reasons
    c, d = by_phone[farm.c.phone], by_phone[farm.d.phone]
    assert (c.number.state, c.operations, c.sms, c.last_sms_at, c.success_rate) == (
        "disabled",
        0,
        0,
        None,
        None,
    )
    assert (d.number.state, d.sms) == ("offline", 1)
    # Sorted by country, operator, phone.
    assert [r.number.country for r in page.items] == ["germany", "russia", "russia", "russia"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (NumberQuery(state="busy"), ["a"]),
        (NumberQuery(state="free"), ["b"]),
        (NumberQuery(state="disabled"), ["c"]),
        (NumberQuery(state="offline"), ["d"]),
        (NumberQuery(country="germany"), ["c"]),
        (NumberQuery(operator="beeline"), ["a", "d"]),
        (NumberQuery(port="goip2"), ["c", "d"]),
        (NumberQuery(search="goip1/2"), ["b"]),
        (NumberQuery(losing=True), ["b"]),
        (NumberQuery(losing=True, state="busy"), []),
        (NumberQuery(country="russia", limit=1, offset=1), ["ad"]),
    ],
)
def test_number_filters(store: Store, farm: Farm, query: NumberQuery, expected: list[str]) -> None:
    page = read(store, lambda r: r.numbers(query))
    names = {farm.a.phone: "a", farm.b.phone: "b", farm.c.phone: "c", farm.d.phone: "d"}
    got = [names[row.number.phone] for row in page.items]
    if expected == ["ad"]:  # a page of one from the middle: total still counts all three
        assert page.total == 3
        assert len(got) == 1
        return
    assert sorted(got) == sorted(expected)
    assert page.total == len(expected)


def test_streaks_count_only_the_window_they_are_given(store: Store, farm: Farm) -> None:
    """B's three empty rents were on day 1: a window from day 2 no longer flags it."""
    since = T + 2 * DAY
    assert read(store, lambda r: r.numbers(NumberQuery(losing=True, streak_since=since))).total == 0
    b = read(store, lambda r: r.number(farm.b.id, since))
    assert (b.rent_no_sms_streak, b.activation_no_sms_streak, b.loss_reasons) == (0, 0, ())
    assert b.operations == 4  # the window narrows the streaks, not the SIM's totals
    a = read(store, lambda r: r.numbers(NumberQuery(state="busy", streak_since=T + DAY))).items[0]
    assert (a.rent_no_sms_streak, a.activation_no_sms_streak) == (0, 1)
    assert read(store, lambda r: r.numbers(NumberQuery(losing=True, streak_since=T))).total == 1


def test_number_search_by_phone_and_unknown_number(store: Store, farm: Farm) -> None:
    page = read(store, lambda r: r.numbers(NumberQuery(search=farm.b.phone[-5:])))
    assert [row.number.id for row in page.items] == [farm.b.id]
    assert read(store, lambda r: r.number(farm.a.id)).operations == 3
    assert read(store, lambda r: r.number(NumberId(9999))) is None


def test_blocked_service_can_be_removed_but_a_sale_cannot(store: Store, farm: Farm) -> None:
    def block(uow: UnitOfWork) -> None:
        uow.numbers.exclude(farm.b.id, TELEGRAM, BLOCKED, T)

    store.run(block)
    row = read(store, lambda r: r.number(farm.b.id))
    assert row.exclusions == (Exclusion(TELEGRAM, BLOCKED), Exclusion(WHATSAPP, SOLD))
    assert store.run(lambda uow: uow.numbers.unexclude(farm.b.id, WHATSAPP, BLOCKED)) is False
    assert store.run(lambda uow: uow.numbers.unexclude(farm.b.id, TELEGRAM, BLOCKED)) is True
    assert store.run(lambda uow: uow.numbers.unexclude(farm.b.id, TELEGRAM, BLOCKED)) is False
    assert read(store, lambda r: r.number(farm.b.id)).exclusions == (Exclusion(WHATSAPP, SOLD),)


def test_a_blocked_service_binds_activations_and_not_rent(store: Store) -> None:
    """Spec 6.2 and 8.4: the partner's blacklist applies to activations only."""
    spec = make_spec()

    def setup(uow: UnitOfWork) -> NumberId:
        uow.numbers.upsert(spec, T)
        number = uow.numbers.get_by_phone(spec.phone)
        assert number is not None
        uow.numbers.exclude(number.id, TELEGRAM, BLOCKED, T)
        return number.id

    store.run(setup)
    counts = store.run(lambda uow: list_available(uow, MARKET, (TELEGRAM, VK), with_rent=True))
    assert counts[0].operator_map["any"] == {TELEGRAM: 0, VK: 1, ServiceName("rent"): 1}
    assert store.run(lambda uow: issue_number(uow, MARKET, make_order(service=TELEGRAM), T)) is None
    rent = store.run(lambda uow: issue_number(uow, MARKET, make_order(kind=OperationKind.RENT), T))
    assert rent is not None
    assert rent.phone == spec.phone


# -- operations ----------------------------------------------------------------------------


def test_operation_rows(store: Store, farm: Farm) -> None:
    page = read(store, lambda r: r.operations(OperationQuery()))
    assert page.total == 7
    assert [row.operation.id for row in page.items] == sorted((o.id for o in farm.ops.values()), reverse=True)
    op1 = read(store, lambda r: r.operation(farm.ops["op1"].id))
    assert (op1.status, op1.earned, op1.sms, op1.last_sms_at, op1.finish_requests) == (
        "sold",
        1250,
        1,
        T + 10,
        1,
    )
    op7 = read(store, lambda r: r.operation(farm.ops["op7"].id))
    assert (op7.status, op7.earned, op7.finish_requests) == ("sold", 900, 2)
    op6 = read(store, lambda r: r.operation(farm.ops["op6"].id))
    assert (op6.status, op6.earned, op6.operation.kind) == ("open", 0, OperationKind.RENT)
    assert read(store, lambda r: r.operation(OperationId(9999))) is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (OperationQuery(kind="rent"), {"rent0", "rent1", "rent2", "op6"}),
        (OperationQuery(kind="activation"), {"op1", "op2", "op7"}),
        (OperationQuery(state="open"), {"op6"}),
        (OperationQuery(state="finished", kind="activation"), {"op1", "op2", "op7"}),
        (OperationQuery(service="telegram"), {"op1"}),
        (OperationQuery(service="rent"), {"rent0", "rent1", "rent2", "op6"}),
        (OperationQuery(status="sold"), {"op1", "op7"}),
        (OperationQuery(status="cancelled"), {"op2", "rent0", "rent1", "rent2"}),
        (OperationQuery(status="open"), {"op6"}),
        (OperationQuery(status="refunded"), set()),
        (OperationQuery(since=T + 2 * DAY), {"op6", "op7"}),
        (OperationQuery(since=T + DAY, until=T + 2 * DAY), {"op2", "rent0", "rent1", "rent2"}),
    ],
)
def test_operation_filters(store: Store, farm: Farm, query: OperationQuery, expected: set[str]) -> None:
    page = read(store, lambda r: r.operations(query))
    names = {o.id: name for name, o in farm.ops.items()}
    assert {names[row.operation.id] for row in page.items} == expected
    assert page.total == len(expected)


def test_operation_filters_by_number_phone_and_page(store: Store, farm: Farm) -> None:
    by_number = read(store, lambda r: r.operations(OperationQuery(number_id=farm.b.id)))
    assert by_number.total == 4
    by_phone = read(store, lambda r: r.operations(OperationQuery(search=farm.a.phone[-6:])))
    assert {row.operation.number_id for row in by_phone.items} == {farm.a.id}
    assert by_phone.total == 3
    page = read(store, lambda r: r.operations(OperationQuery(limit=2, offset=2)))
    assert page.total == 7
    assert len(page.items) == 2


# -- SMS and deliveries --------------------------------------------------------------------


def test_messages_carry_routing_delivery_and_attempts(store: Store, farm: Farm) -> None:
    page = read(store, lambda r: r.messages(MessageQuery()))
    assert page.total == 4
    assert [m.message.text for m in page.items] == [
        "whatsapp 44444",
        "stray 33333",
        "rent 22222",
        "telegram 11111",
    ]
    stray = page.items[1]
    assert stray.message.operation_id is None
    assert stray.delivery is None
    assert stray.attempts == ()
    first = page.items[3]
    assert first.message.operation_id == farm.ops["op1"].id
    assert first.delivery is not None
    assert first.delivery.state == "delivered"
    assert [(a.http_status, a.verdict, a.latency_ms) for a in first.attempts] == [
        (200, Verdict.DELIVERED, 12.5)
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (MessageQuery(routed=False), {"stray 33333"}),
        (MessageQuery(routed=True), {"telegram 11111", "rent 22222", "whatsapp 44444"}),
        (MessageQuery(delivery_state="delivered"), {"telegram 11111"}),
        (MessageQuery(delivery_state="failed"), {"rent 22222"}),
        (MessageQuery(delivery_state="rejected"), {"rent 22222"}),
        (MessageQuery(delivery_state="pending"), {"whatsapp 44444"}),
        (MessageQuery(search="4444"), {"whatsapp 44444"}),
        (MessageQuery(limit=1), {"whatsapp 44444"}),
    ],
)
def test_message_filters(store: Store, farm: Farm, query: MessageQuery, expected: set[str]) -> None:
    page = read(store, lambda r: r.messages(query))
    assert {m.message.text for m in page.items} == expected
    if query.limit == 50:
        assert page.total == len(expected)


def test_message_filters_by_number_and_operation(store: Store, farm: Farm) -> None:
    by_number = read(store, lambda r: r.messages(MessageQuery(number_id=farm.a.id)))
    assert {m.message.text for m in by_number.items} == {"telegram 11111", "rent 22222"}
    by_operation = read(store, lambda r: r.messages(MessageQuery(operation_id=farm.ops["op7"].id)))
    assert [m.message.text for m in by_operation.items] == ["whatsapp 44444"]
    assert [a.verdict for a in by_operation.items[0].attempts] == [Verdict.RETRY]


def test_deliveries(store: Store, farm: Farm) -> None:
    page = read(store, lambda r: r.deliveries(DeliveryQuery()))
    assert [d.delivery.id for d in page.items] == [farm.deliveries[k] for k in ("d3", "d2", "d1")]
    assert page.total == 3
    d2 = read(store, lambda r: r.delivery(farm.deliveries["d2"]))
    assert (d2.delivery.state, d2.delivery.reason, d2.kind, d2.service) == (
        "rejected", "NO_OPERATION", OperationKind.RENT, None,
    )  # fmt: skip
    assert d2.message.text == "rent 22222"
    assert len(d2.attempts) == 1
    assert d2.claimed_by is None
    d3 = read(store, lambda r: r.delivery(farm.deliveries["d3"]))
    assert (d3.delivery.state, d3.delivery.attempts, d3.service) == ("pending", 1, WHATSAPP)
    assert read(store, lambda r: r.delivery(9999)) is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("pending", {"d3"}),
        ("failed", {"d2"}),
        ("rejected", {"d2"}),
        ("given_up", set()),
        ("delivered", {"d1"}),
    ],
)
def test_delivery_filters(store: Store, farm: Farm, state: str, expected: set[str]) -> None:
    page = read(store, lambda r: r.deliveries(DeliveryQuery(state=state)))
    names = {v: k for k, v in farm.deliveries.items()}
    assert {names[d.delivery.id] for d in page.items} == expected
    assert page.total == len(expected)
    by_op = read(store, lambda r: r.deliveries(DeliveryQuery(operation_id=farm.ops["op1"].id)))
    assert [d.delivery.id for d in by_op.items] == [farm.deliveries["d1"]]


# -- overview, stats, metrics --------------------------------------------------------------


def test_summaries(store: Store, farm: Farm) -> None:
    assert read(store, lambda r: r.number_states()) == {"free": 1, "busy": 1, "offline": 1, "disabled": 1}
    act, rent = OperationKind.ACTIVATION, OperationKind.RENT
    assert read(store, lambda r: r.operation_statuses()) == [
        StatusCount(act, "cancelled", 1), StatusCount(act, "sold", 2),
        StatusCount(rent, "cancelled", 3), StatusCount(rent, "open", 1),
    ]  # fmt: skip
    assert read(store, lambda r: r.operation_statuses(T + 2 * DAY)) == [
        StatusCount(act, "sold", 1), StatusCount(rent, "open", 1),
    ]  # fmt: skip
    outbox = read(store, lambda r: r.outbox())
    assert (outbox.pending, outbox.rejected, outbox.given_up, outbox.delivered) == (1, 1, 0, 1)
    assert outbox.oldest_pending_at == T + 2 * DAY + 300
    assert outbox.oldest_age(T + 2 * DAY + 400) == 100
    everything = read(store, lambda r: r.earnings())
    assert (everything.sold, everything.finished, everything.earnings) == (2, 6, 2150)
    today = read(store, lambda r: r.earnings(DAY0 + 2 * DAY))
    assert (today.sold, today.finished, today.earnings) == (1, 1, 900)


def test_stats_per_day_service_country_and_number(store: Store, farm: Farm) -> None:
    stats: Stats = read(store, lambda r: r.stats([DAY0, DAY0 + DAY, DAY0 + 2 * DAY]))
    assert [(d.start, d.opened, d.finished, d.sold, d.earnings) for d in stats.days] == [
        (DAY0, 1, 1, 1, 1250),
        (DAY0 + DAY, 4, 4, 0, 0),
        (DAY0 + 2 * DAY, 2, 1, 1, 900),
    ]
    assert [(g.key, g.opened, g.finished, g.sold, g.earnings) for g in stats.by_service] == [
        ("telegram", 1, 1, 1, 1250),
        ("whatsapp", 1, 1, 1, 900),
        ("rent", 4, 3, 0, 0),
        ("vkcom", 1, 1, 0, 0),
    ]
    assert [(g.key, g.opened, g.sold, g.earnings) for g in stats.by_country] == [("russia", 7, 2, 2150)]
    assert [(g.key, g.opened, g.finished, g.earnings) for g in stats.by_number] == [
        (farm.a.phone, 3, 2, 1250),
        (farm.b.phone, 4, 4, 900),
    ]
    assert stats.by_number[0].success_rate == 0.5
    days_only = read(store, lambda r: r.stats([DAY0, DAY0 + DAY, DAY0 + 2 * DAY], groups=False))
    assert days_only.days == stats.days
    assert (days_only.by_service, days_only.by_country, days_only.by_number) == ([], [], [])
    top = read(store, lambda r: r.stats([DAY0], top=1))
    assert len(top.by_number) == 1
    assert top.days[0].opened == 1


def test_stats_window_counts_only_its_days(store: Store, farm: Farm) -> None:
    stats: Stats = read(store, lambda r: r.stats([DAY0 + 2 * DAY]))
    assert [(d.opened, d.finished, d.earnings) for d in stats.days] == [(2, 1, 900)]
    assert [(g.key, g.opened, g.finished, g.earnings) for g in stats.by_service] == [
        ("whatsapp", 1, 1, 900),
        ("rent", 1, 0, 0),
    ]
    assert read(store, lambda r: r.stats([])).days == []


def test_reports_on_an_empty_store(store: Store) -> None:
    assert read(store, lambda r: r.numbers(NumberQuery())).total == 0
    assert read(store, lambda r: r.numbers(NumberQuery(losing=True))).items == []
    assert read(store, lambda r: r.number_states()) == {"free": 0, "busy": 0, "offline": 0, "disabled": 0}
    assert read(store, lambda r: r.operation_statuses()) == []
    summary = read(store, lambda r: r.outbox())
    assert (summary.pending, summary.oldest_pending_at, summary.oldest_age(T)) == (0, None, None)
    assert read(store, lambda r: r.earnings()).earnings == 0
    assert [d.opened for d in read(store, lambda r: r.stats([DAY0, DAY0 + DAY])).days] == [0, 0]


# -- several marketplaces -----------------------------------------------------------------


def test_marketplaces_and_currencies_are_reported_apart(store: Store) -> None:
    from simgate.domain.read_model import MarketplaceStats
    from simgate.services.inventory import import_numbers
    from simgate.services.lanes import register_marketplaces

    hub = "smshub"
    store.run(lambda uow: register_marketplaces(uow, [MARKET, hub], T - 200))
    specs = [make_spec(phone=PhoneNumber(f"7999000000{i}")) for i in range(4)]
    store.run(lambda uow: import_numbers(uow, specs, T - 100))

    def work(uow: UnitOfWork) -> Operation:
        sold_here = issue_number(uow, MARKET, make_order(offered=Kopecks(1000)), T)
        sold_there = issue_number(uow, hub, make_order(offered=Kopecks(30), currency="USD"), T + 1)
        held = issue_number(uow, hub, make_order(offered=Kopecks(50), currency="USD"), T + 2)
        assert sold_here is not None
        assert sold_there is not None
        assert held is not None
        finish_operation(uow, MARKET, sold_here.id, 3, None, T + 10)
        finish_operation(uow, hub, sold_there.id, 3, None, T + 20)
        return held

    held = store.run(work)
    # RUB and USD are never added up: one row per marketplace and currency.
    assert read(store, lambda r: r.marketplace_stats(DAY0, T - DAY)) == [
        MarketplaceStats(MARKET, "RUB", open=0, opened=1, sold_today=1, earnings_today=1000, sold=1,
                         earnings=1000),
        MarketplaceStats(hub, "USD", open=1, opened=2, sold_today=1, earnings_today=30, sold=1, earnings=30),
    ]  # fmt: skip
    # A later day: only what is open now, and what the window still holds.
    assert read(store, lambda r: r.marketplace_stats(DAY0 + DAY, T + 15)) == [
        MarketplaceStats(hub, "USD", open=1, sold=1, earnings=30),
    ]
    # The console's kopeck figures are roubles: the USD sale is in none of them.
    assert read(store, lambda r: r.earnings()).earnings == 1000
    days = read(store, lambda r: r.stats([DAY0], groups=True))
    assert days.days[0].earnings == 1000
    assert [(g.key, g.sold, g.earnings) for g in days.by_service] == [("telegram", 2, 1000)]
    sims = read(store, lambda r: r.numbers(NumberQuery(limit=10))).items
    assert sorted(n.earnings for n in sims) == [0, 0, 0, 1000]
    assert read(store, lambda r: r.open_by_marketplace()) == {hub: 1}
    assert read(store, lambda r: r.free_by_lane()) == {MARKET: 2, hub: 1}
    report = read(store, lambda r: r.number(held.number_id))
    assert report is not None
    assert report.open_marketplace == hub
    assert read(store, lambda r: r.numbers(NumberQuery(state="free"))).items[0].open_marketplace is None
    on_hub = read(store, lambda r: r.operations(OperationQuery(marketplace=hub)))
    assert on_hub.total == 2
    assert {o.operation.marketplace for o in on_hub.items} == {hub}


def test_streaks_match_the_domain_rule_over_a_random_history(store: Store) -> None:
    """The SQL stores count streaks in one aggregate (window functions); the fake walks the
    operations with domain.read_model.streaks. Both must agree on any history."""
    rng = random.Random(20261204)
    operators = [OperatorName(f"op{i}") for i in range(4)]
    specs = [make_spec(operator=operator) for operator in operators]
    history: list[tuple[NumberId, OperationKind, bool]] = []

    def work(uow: UnitOfWork) -> None:
        for spec in specs:
            uow.numbers.upsert(spec, T - 100)
        for k in range(80):
            now = T + 100 * k
            rent = rng.random() < 0.4
            order = make_order(
                kind=OperationKind.RENT if rent else OperationKind.ACTIVATION,
                operator=rng.choice(operators),
                **({} if rent else {"service": ServiceName(f"service{k}")}),
            )
            operation = _issue(uow, order, now)
            got_sms = rng.random() < 0.3
            if got_sms:
                _sms(uow, operation.phone, f"code {k}", now + 10)
            finish_operation(uow, MARKET, operation.id, 3 if got_sms else 4, None, now + 50)
            history.append((operation.number_id, operation.kind, got_sms))

    store.run(work)
    expected = streaks(history)
    page = read(store, lambda r: r.numbers(NumberQuery()))
    got = {row.number.id: (row.rent_no_sms_streak, row.activation_no_sms_streak) for row in page.items}
    assert got == {number_id: expected.get(number_id, (0, 0)) for number_id in got}
    losing = read(store, lambda r: r.numbers(NumberQuery(losing=True)))
    assert {row.number.id for row in losing.items} == {n for n, s in expected.items() if loss_reasons(*s)}
