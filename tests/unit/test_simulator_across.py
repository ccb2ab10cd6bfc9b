"""The checks across marketplaces (simulator/across.py) on hand-written ledgers.

Each rule gets a ledger pair that breaks it, and one that only looks like it does (a race
the check must forgive): a check that cries wolf would fail every honest demo.
"""

from __future__ import annotations

from collections import Counter

from simgate.simulator.across import (
    Routed,
    Seller,
    counts_within_free_sims,
    no_push_after_success,
    no_resale_elsewhere,
    no_sim_held_twice,
    offered_again_across,
    pushes_to_the_right_marketplace,
    resale_window_kept,
)
from simgate.simulator.farm import SimCard
from simgate.simulator.findings import Report
from simgate.simulator.ledger import Ledger, MarketOp, Push, Snapshot
from simgate.simulator.protocol import AGENT_NAMES, Names

PHONE = "79031234567"
CARDS = [SimCard(PHONE, "russia", "beeline"), SimCard("79051234567", "russia", "beeline")]  # type: ignore[arg-type]


def op(
    op_id: int, issued: float, finished: float | None, *, service: str = "telegram", phone: str = PHONE
) -> MarketOp:
    operation = MarketOp(op_id, "activation", "russia", "any", service, phone, 1000, issued - 0.01, issued)
    operation.canonical = AGENT_NAMES.service(service)
    operation.finish_sent_at = finished
    operation.closed_at = None if finished is None else finished + 0.01
    return operation


def sellers(onlinesim: list[MarketOp], smshub: list[MarketOp]) -> tuple[Seller, Seller]:
    pair = (Seller("onlinesim", Ledger(), Names()), Seller("smshub", Ledger(), AGENT_NAMES))
    for seller, ops in zip(pair, (onlinesim, smshub), strict=True):
        for operation in ops:
            seller.ledger.record_issue(operation)
            if operation.finish_sent_at is not None:
                seller.ledger.record_finish_sent(operation, operation.finish_sent_at)
    return pair


def judged(report: Report, name: str) -> tuple[int, int, list[str]]:
    check = report.check(name)
    return check.observed, check.failures, check.examples


# ---------------------------------------------------------------------- one SIM, one buyer


def test_one_sim_open_on_two_marketplaces_at_once_is_caught() -> None:
    report = Report()
    pair = sellers([op(1, 10.0, 20.0)], [op(2, 15.0, None, service="tg")])
    no_sim_held_twice(pair, report)
    _, failures, examples = judged(report, "no_sim_held_by_two_marketplaces")
    assert failures == 1
    assert "onlinesim operation 1 and smshub operation 2 open together" in examples[0]


def test_a_sim_handed_over_after_finish_is_not() -> None:
    report = Report()
    # The FINISH was sent at 20.0; the other marketplace's answer came at 20.0 too: the
    # release may have come first, so this is no evidence of a double sale.
    pair = sellers([op(1, 10.0, 20.0)], [op(2, 20.0, 30.0, service="tg")])
    no_sim_held_twice(pair, report)
    assert judged(report, "no_sim_held_by_two_marketplaces")[:2] == (2, 0)  # one per operation


# ---------------------------------------------------------------------- counts


def poll(started: float, counts: dict[tuple[str, str, str], int]) -> Snapshot:
    return Snapshot(started, started + 0.01, counts, Counter())


def test_counts_that_add_up_above_the_free_sims_are_caught() -> None:
    report = Report()
    onlinesim, smshub = sellers([], [])
    onlinesim.ledger.polls.append(poll(10.0, {("russia", "any", "telegram"): 2}))
    smshub.ledger.polls.append(poll(11.0, {("russia", "beeline", "tg"): 1}))
    counts_within_free_sims((onlinesim, smshub), CARDS, report, stale_after=30.0)
    _, failures, examples = judged(report, "counts_within_free_sims")
    assert failures == 1
    assert "russia/telegram: 3 advertised in all at smshub's poll, 2 SIMs free" in examples[0]


def test_a_sim_moved_to_another_lane_after_an_answer_without_it_is_not() -> None:
    report = Report()
    onlinesim, smshub = sellers([], [])
    onlinesim.ledger.polls += [poll(10.0, {("russia", "any", "telegram"): 2}), poll(12.0, {})]
    smshub.ledger.polls.append(poll(13.0, {("russia", "any", "tg"): 2}))
    counts_within_free_sims((onlinesim, smshub), CARDS, report, stale_after=30.0)
    assert judged(report, "counts_within_free_sims")[1] == 0


def test_an_order_since_the_last_answer_uses_up_its_promise() -> None:
    report = Report()
    onlinesim, smshub = sellers([], [])
    onlinesim.ledger.polls.append(poll(10.0, {("russia", "any", "telegram"): 2}))
    order = onlinesim.ledger.record_order("russia", 11.0)
    order.answered_at = 11.01
    smshub.ledger.polls.append(poll(12.0, {("russia", "any", "tg"): 0}))
    counts_within_free_sims((onlinesim, smshub), CARDS, report, stale_after=30.0)
    # onlinesim's 2 less its order = 1; smshub 0; 2 SIMs free (the order's is not surely busy).
    assert judged(report, "counts_within_free_sims")[1] == 0


# ---------------------------------------------------------------------- pushes


def push(at: float, text: str, answer: str = "SUCCESS", op_id: int | None = 1) -> Push:
    return Push(at, False, op_id, 5, PHONE, "Telegram", text, answer)


def test_a_push_for_another_marketplaces_operation_is_caught() -> None:
    report = Report()
    onlinesim, smshub = sellers([op(1, 10.0, 20.0)], [op(2, 30.0, None, service="tg")])
    smshub.ledger.pushes.append(push(31.0, "Telegram code 1"))
    onlinesim.ledger.pushes.append(push(12.0, "Telegram code 2"))
    routed = [Routed(PHONE, "Telegram code 1", 1), Routed(PHONE, "Telegram code 2", 1)]
    pushes_to_the_right_marketplace((onlinesim, smshub), routed, report)
    observed, failures, examples = judged(report, "pushes_to_the_right_marketplace")
    assert (observed, failures) == (2, 1)
    assert "pushed to smshub, routed to onlinesim's operation" in examples[0]


def test_a_push_to_a_marketplace_that_never_held_the_number_is_caught() -> None:
    report = Report()
    onlinesim, smshub = sellers([op(1, 10.0, 20.0)], [])
    smshub.ledger.pushes.append(push(12.0, "Telegram code 3", op_id=None))
    pushes_to_the_right_marketplace((onlinesim, smshub), [], report)
    _, failures, examples = judged(report, "pushes_to_the_right_marketplace")
    assert failures == 1
    assert "smshub, which never held it (onlinesim did)" in examples[0]


def test_a_push_anywhere_after_success_is_caught() -> None:
    report = Report()
    onlinesim, smshub = sellers([op(1, 10.0, 20.0)], [])
    onlinesim.ledger.pushes += [push(11.0, "code", "RETRY"), push(12.0, "code")]
    smshub.ledger.pushes.append(push(13.0, "code"))
    no_push_after_success((onlinesim, smshub), report)
    _, failures, examples = judged(report, "no_push_after_success_anywhere")
    assert failures == 1
    assert "pushed to smshub after onlinesim answered SUCCESS" in examples[0]


def test_a_sale_on_one_marketplace_closes_the_service_on_the_others() -> None:
    report = Report()
    onlinesim, smshub = sellers(
        [op(1, 10.0, 20.0)], [op(2, 30.0, 40.0, service="tg"), op(3, 50.0, None, service="wa")]
    )
    onlinesim.ledger.sold[(PHONE, "telegram")] = 20.5
    no_resale_elsewhere((onlinesim, smshub), report)
    _, failures, examples = judged(report, "no_resale_on_another_marketplace")
    assert failures == 1  # `tg` is SMSHUB's telegram; `wa` (whatsapp) was not sold
    assert f"{PHONE} issued for telegram on smshub after its sale on onlinesim" in examples[0]


# ---------------------------------------------------------------------- offered again


def offering(onlinesim: int, smshub: int) -> list[Snapshot]:
    return [
        poll(50.0, {("russia", "any", "telegram"): onlinesim}),
        poll(50.0, {("russia", "any", "tg"): smshub}),
    ]


def test_numbers_are_offered_again_by_all_marketplaces_together() -> None:
    onlinesim, smshub = sellers([], [])
    onlinesim.ledger.polls.append(offering(2, 0)[0])
    smshub.ledger.polls.append(offering(0, 2)[1])
    # Lanes: one SIM in each marketplace's lane; neither offers both, together they do.
    assert offered_again_across((onlinesim, smshub), CARDS, [offering(1, 1)]) == (1, [])
    assert offered_again_across((onlinesim, smshub), CARDS, [offering(1, 0)]) == (
        1,
        ["russia/telegram: 1 offered in all, 2 free"],
    )


def test_a_sim_between_lanes_is_forgiven_on_a_later_round() -> None:
    onlinesim, smshub = sellers([], [])
    onlinesim.ledger.polls.append(offering(2, 0)[0])
    smshub.ledger.polls.append(offering(0, 2)[1])
    # Counted by neither while it leaves; the next round finds it in its new lane.
    assert offered_again_across((onlinesim, smshub), CARDS, [offering(1, 0), offering(1, 1)]) == (1, [])


def test_a_number_sold_anywhere_is_not_expected_again_for_that_service() -> None:
    onlinesim, smshub = sellers([], [op(1, 10.0, 20.0, service="tg")])
    smshub.ledger.sold[(PHONE, "tg")] = 20.0
    onlinesim.ledger.polls.append(offering(2, 0)[0])
    smshub.ledger.polls.append(offering(0, 2)[1])
    assert offered_again_across((onlinesim, smshub), CARDS, [offering(1, 0)]) == (1, [])


# ---------------------------------------------------------------------- HeroSMS's resale window


def sold(operation: MarketOp) -> MarketOp:
    operation.status, operation.confirmed = 3, True
    return operation


def market(name: str, *ops: MarketOp) -> Seller:
    seller = Seller(name, Ledger(), AGENT_NAMES)
    for operation in ops:
        seller.ledger.record_issue(operation)
    return seller


def test_a_number_sold_on_herosms_and_issued_elsewhere_inside_the_window_is_caught() -> None:
    report = Report()
    pair = [market("herosms", sold(op(1, 10.0, 20.0))), market("grizzly", op(2, 30.0, 40.0, service="vk"))]
    resale_window_kept(pair, report, window=100.0)
    _, failures, examples = judged(report, "resale_window_kept")
    assert failures == 1
    assert "issued on grizzly for vkcom after its sale on herosms for telegram" in examples[0]


def test_a_number_sold_elsewhere_and_issued_on_herosms_inside_the_window_is_caught() -> None:
    report = Report()
    pair = [market("smshub", sold(op(1, 10.0, 20.0))), market("herosms", op(2, 30.0, None, service="wa"))]
    resale_window_kept(pair, report, window=100.0)
    assert judged(report, "resale_window_kept")[1] == 1


def test_outside_the_window_between_others_or_in_the_other_scope_is_allowed() -> None:
    report = Report()
    after = [market("herosms", sold(op(1, 10.0, 20.0))), market("smshub", op(2, 200.0, None, service="wa"))]
    resale_window_kept(after, report, window=100.0)
    others = [market("smshub", sold(op(1, 10.0, 20.0))), market("grizzly", op(2, 30.0, None, service="wa"))]
    resale_window_kept(others, report, window=100.0)
    # Scope `service`: another service of the number may be sold elsewhere.
    service = [market("herosms", sold(op(1, 10.0, 20.0))), market("smshub", op(2, 30.0, None, service="wa"))]
    resale_window_kept(service, report, window=100.0, scope="service")
    # An unconfirmed FINISH 3, or an order sent before the sale was confirmed: no evidence.
    unconfirmed = op(1, 10.0, 20.0)
    unconfirmed.status = 3
    racing = [market("herosms", unconfirmed, sold(op(3, 40.0, 50.0))), market("smshub", op(2, 45.0, None))]
    resale_window_kept(racing, report, window=100.0)
    assert judged(report, "resale_window_kept")[:2] == (9, 0)  # one per operation
