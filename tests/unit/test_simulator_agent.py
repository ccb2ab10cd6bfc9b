"""The simulated marketplace over the agent protocol (SMSHUB), against a fake partner.

A correct partner gets a clean report; each sabotage of the fake breaks one rule of the spec
(smshub-agent 5, 8) and the simulator's check for it must catch it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from simgate.simulator.client import CallResult
from simgate.simulator.demand import Demand
from simgate.simulator.farm import make_farm
from simgate.simulator.findings import Report
from simgate.simulator.ledger import MarketOp
from simgate.simulator.market_config import for_marketplace
from simgate.simulator.marketplace import MarketplaceSimulator
from simgate.simulator.pushes import validate_agent_push
from tests.unit.agent_partner import AgentPartner, Sabotage

KEY = "hub-key"
HEADERS = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "simgate/1"}
GOOD = (
    b'{"action":"PUSH_SMS","key":"hub-key","smsId":7,"phone":79281234567,"phoneFrom":"VK","text":"VK: 33708"}'
)
FARM = make_farm(12, seed=3, countries=(("russia", 1.0),), unknown_operator=0.0, disabled=0.0)
DEADLINE = 60.0
"""Real seconds a run may take to do its work (a second or two on a quiet machine): runs stop
once their test's work is done, so only a broken simulator or partner waits this out."""


async def run_against(
    sabotage: Sabotage | None = None, *, until: Callable[[Report], bool], **settings: object
) -> Report:
    """Buy from the fake partner until `until` holds of the report: fixed work, not a fixed
    time, whose yield a loaded machine cuts (tests never fail on a timing)."""
    partner = AgentPartner(FARM, KEY, sabotage=sabotage or Sabotage())
    run_against.partner = partner  # type: ignore[attr-defined]
    url = await partner.start()
    config = for_marketplace(
        "smshub", url, KEY, speed=60.0, seed=2, activation_rate=1.0, p_exception=0.3,
        deadline=10.0,  # not SMSHUB's 3 s: a latency a starved machine can miss; bench measures it
        **settings,
    )  # fmt: skip
    try:
        async with MarketplaceSimulator(config, farm=FARM) as market:
            partner.push_url = market.push_url
            stop = asyncio.Event()
            watcher = asyncio.create_task(stop_when(lambda: until(market.report), stop))
            try:
                await market.run(DEADLINE, stop)
            finally:
                watcher.cancel()
            await market.close_all(10)
            await market.final_poll()
            report = market.finalize()
    finally:
        await partner.stop()
    report.counts["partner.orders"] = len(partner.orders)
    return report


async def stop_when(done: Callable[[], bool], stop: asyncio.Event) -> None:
    while True:
        if done():
            stop.set()
            return
        await asyncio.sleep(0.02)


def failures(**at_least: int) -> Callable[[Report], bool]:
    """Until each check named has failed at least so many times."""
    return lambda report: all(report.check(name).failures >= n for name, n in at_least.items())


def failing(report: Report) -> dict[str, list[str]]:
    return {name: check.examples for name, check in report.checks.items() if not check.passed}


# ---------------------------------------------------------------------- the buyer


def busy(report: Report) -> bool:
    counts = report.counts
    return (
        counts["activation.opened"] >= 10
        and counts["activation.finished.3"] >= 5
        and counts["push.success"] >= 10
        and report.check("sms_id_stable").observed >= 10
        and any("exceptionPhoneSet" in order for order in run_against.partner.orders)  # type: ignore[attr-defined]
    )


async def test_a_correct_agent_partner_gets_a_clean_report() -> None:
    report = await run_against(until=busy)
    partner: AgentPartner = run_against.partner  # type: ignore[attr-defined]

    assert report.ok, failing(report)
    assert "any_is_total" not in report.checks  # an Onlinesim rule
    counts = report.counts
    assert counts["activation.opened"] >= 10
    assert counts["activation.finished.3"] >= 5
    assert counts["push.success"] >= 10
    assert counts["activation.open"] == 0
    assert report.checks["sms_id_stable"].observed >= 10
    assert report.checks["no_duplicate_push"].failures == 0
    # The agent protocol's own shapes: one URL, currency 643, prefixes as strings, no sum in FINISH.
    assert {order["currency"] for order in partner.orders} == {643}
    excluded = [p for order in partner.orders for p in order.get("exceptionPhoneSet", ())]
    assert excluded
    assert all(isinstance(p, str) for p in excluded)
    assert {order["service"] for order in partner.orders} <= {"tg", "wa", "vk"}
    assert all("sum" not in finish for finish in partner.finishes)
    assert {finish["status"] for finish in partner.finishes} <= {1, 3, 4, 5}
    assert report.latencies.summary("GET_NUMBER")["count"] >= 10


async def test_a_push_retried_with_a_new_sms_id_is_caught() -> None:
    report = await run_against(
        Sabotage(new_sms_id_on_retry=True), p_push_failure=0.5, until=failures(sms_id_stable=1)
    )

    assert not report.ok
    assert report.checks["sms_id_stable"].failures >= 1
    assert "came again with smsId" in report.checks["sms_id_stable"].examples[0]


async def test_a_push_after_success_is_caught() -> None:
    report = await run_against(Sabotage(push_again_after_success=True), until=failures(no_duplicate_push=5))

    assert report.checks["no_duplicate_push"].failures >= 5
    assert "after SUCCESS" in report.checks["no_duplicate_push"].examples[0]


async def test_a_phone_sent_as_a_string_is_caught() -> None:
    report = await run_against(Sabotage(phone_as_string=True), until=failures(pushes_well_formed=3))

    assert report.checks["pushes_well_formed"].failures >= 3
    assert "is not a JSON number" in report.checks["pushes_well_formed"].examples[0]


async def test_any_beside_named_operators_is_caught() -> None:
    report = await run_against(
        Sabotage(any_beside_named=True),
        until=lambda report: any(
            "`any` beside named operators" in example
            for example in report.check("answers_well_formed").examples
        ),
    )

    examples = report.checks["answers_well_formed"].examples
    assert any("`any` beside named operators" in example for example in examples), examples


async def test_over_reported_counts_are_caught() -> None:
    # Until an order meets the padded count, however long a busy machine takes to get there.
    report = await run_against(
        Sabotage(over_report=3), until=failures(counts_within_farm=1, counts_not_over_reported=1)
    )

    assert report.checks["counts_within_farm"].failures >= 1
    assert report.checks["counts_not_over_reported"].failures >= 1


# ---------------------------------------------------------------------- the parts


def test_a_documented_agent_push_is_well_formed() -> None:
    payload, problems = validate_agent_push(GOOD, HEADERS, KEY)
    assert problems == []
    assert payload is not None
    assert payload["phone"] == 79281234567


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (GOOD.replace(b"79281234567", b'"79281234567"'), HEADERS, "is not a JSON number"),
        (GOOD.replace(b'"smsId":7', b'"smsId":"7"'), HEADERS, "smsId '7'"),
        (GOOD.replace(b"79281234567", b"9281"), HEADERS, "with the country code"),
        (GOOD.replace(b"hub-key", b"other"), HEADERS, "wrong key"),
        (GOOD, {"Content-Type": "application/json"}, "no User-Agent"),
    ],
)
def test_malformed_agent_pushes_are_named(body: bytes, headers: dict[str, str], problem: str) -> None:
    _, problems = validate_agent_push(body, headers, KEY)
    assert any(problem in p for p in problems), problems


@pytest.fixture
async def market() -> AsyncIterator[MarketplaceSimulator]:
    async with MarketplaceSimulator(for_marketplace("smshub", "http://127.0.0.1:1", KEY), farm=FARM) as it:
        yield it


def test_agent_counts_may_name_operators_without_any(market: MarketplaceSimulator) -> None:
    body = {
        "status": "SUCCESS",
        "countryList": [{"country": "russia", "operatorMap": {"mts": {"vk": 2}, "beeline": {"vk": 1}}}],
    }
    counts = market.checks.services_answer("GET_SERVICES", CallResult(200, body, 0.01))

    assert counts == {("russia", "mts", "vk"): 2, ("russia", "beeline", "vk"): 1}
    assert market.report.checks["answers_well_formed"].failures == 0
    # Ordering from such an answer names an operator: there is no `any` to order under.
    demand = Demand(market.config, market.rng)
    picks = Counter(demand.choose(dict(counts), "activation") for _ in range(3))
    assert set(picks) <= {("russia", "mts", "vk"), ("russia", "beeline", "vk")}
    assert demand.choose(dict.fromkeys(counts, 0), "activation") is None


def test_a_number_cancelled_four_times_is_not_to_be_issued_again(market: MarketplaceSimulator) -> None:
    phone = FARM[0].phone
    market.ledger.cancels[(phone, "vk")] = [1.0, 2.0, 3.0]
    op = MarketOp(5, "activation", "russia", "any", "vk", phone, 1000, 10.0, 10.1)
    assert market.checks.issued(op, None)
    assert market.report.checks["no_reissue_after_sale"].failures == 0

    market.ledger.cancels[(phone, "vk")].append(4.0)
    again = MarketOp(6, "activation", "russia", "any", "vk", phone, 1000, 10.0, 10.1)
    market.checks.issued(again, None)
    check = market.report.checks["no_reissue_after_sale"]
    assert check.failures == 1
    assert "4 cancellations" in check.examples[0]
