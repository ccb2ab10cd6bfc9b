"""`numbers why`: each rule that keeps a number from a marketplace is named, with its time."""

from __future__ import annotations

from dataclasses import replace

from simgate.domain.ledger import DAY, ExclusionGroup, LedgerRules, ResaleRule, ResaleScope
from simgate.domain.model import ExclusionFact, Marketplace, Number, Operation, OperationKind
from simgate.domain.types import (
    CountryName,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from simgate.domain.why import NumberFacts, why_not

T = 1_700_000_000.0  # 2023-11-14 22:13 UTC
FOUR = [Marketplace(name, True) for name in ("grizzly", "herosms", "onlinesim", "smshub")]
RULES = LedgerRules(
    resale=(ResaleRule("herosms", 60 * DAY),),
    groups=(
        ExclusionGroup("whatsapp+astropay", frozenset({ServiceName("whatsapp"), ServiceName("astropay")})),
    ),
)
SIM = Number(
    NumberId(1), PhoneNumber("79280000001"), CountryName("russia"), OperatorName("beeline"), "", True, True,
    True, None, lane="smshub",
)  # fmt: skip


def sale(op: int, market: str, service: str | None, at: float, status: int = 3) -> Operation:
    kind = OperationKind.RENT if service is None else OperationKind.ACTIVATION
    return Operation(
        OperationId(op), market, kind, SIM.id, SIM.phone, SIM.country, SIM.operator,
        None if service is None else ServiceName(service), None, at - 60,
        finished_at=at, finish_status=status,
    )  # fmt: skip


def facts(
    number: Number = SIM, operations: tuple[Operation, ...] = (), exclusions: tuple[ExclusionFact, ...] = ()
) -> NumberFacts:
    return NumberFacts(number, operations, exclusions, FOUR)


def rules_of(reasons: list) -> list[str]:  # type: ignore[type-arg]
    return [r.rule for r in reasons]


def test_a_free_number_in_the_lane_is_offered() -> None:
    assert why_not(facts(), RULES, "smshub", ServiceName("telegram"), T) == []


def test_busy_names_the_marketplace_and_the_time() -> None:
    held = replace(sale(7, "onlinesim", "vkcom", T), finished_at=None, finish_status=None)
    (reason,) = why_not(
        facts(replace(SIM, open_operation_id=OperationId(7)), (held,)), RULES, "smshub", None, T
    )
    assert reason.rule == "busy"
    assert reason.text == "busy on onlinesim since 2023-11-14 22:12 UTC (vkcom, operation 7)"


def test_a_herosms_sale_names_the_window_and_its_end() -> None:
    (reason,) = why_not(facts(operations=(sale(3, "herosms", "vkcom", T),)), RULES, "smshub", None, T + DAY)
    assert reason.rule == "resale"
    assert reason.until == T + 60 * DAY
    assert "resale window of herosms's terms until 2024-01-13 22:13 UTC" in reason.text
    assert "sold for vkcom on herosms at 2023-11-14 22:13 UTC (operation 3)" in reason.text
    assert (
        why_not(facts(operations=(sale(3, "herosms", "vkcom", T),)), RULES, "smshub", None, T + 61 * DAY)
        == []
    )


def test_a_sale_elsewhere_keeps_it_from_herosms_only() -> None:
    sim = replace(SIM, lane="herosms")
    history = (sale(3, "smshub", "vkcom", T),)
    assert rules_of(why_not(facts(sim, history), RULES, "herosms", None, T + 1)) == ["resale"]
    assert (
        rules_of(why_not(facts(replace(SIM, lane="grizzly"), history), RULES, "grizzly", None, T + 1)) == []
    )


def test_scope_service_binds_only_the_service_sold_and_rents_bind_all() -> None:
    per_service = LedgerRules(resale=(ResaleRule("herosms", 60 * DAY, ResaleScope.SERVICE),))
    history = (sale(3, "herosms", "vkcom", T),)
    assert why_not(facts(operations=history), per_service, "smshub", ServiceName("telegram"), T + 1) == []
    assert rules_of(
        why_not(facts(operations=history), per_service, "smshub", ServiceName("vkcom"), T + 1)
    ) == ["resale"]
    rent = (sale(4, "herosms", None, T),)
    assert rules_of(
        why_not(facts(operations=rent), per_service, "smshub", ServiceName("telegram"), T + 1)
    ) == ["resale"]


def test_unsold_outcomes_bind_nothing() -> None:
    history = (sale(3, "herosms", "vkcom", T, status=4), sale(4, "herosms", "vkcom", T, status=5))
    assert why_not(facts(operations=history), RULES, "smshub", None, T + 1) == []


def test_exclusions_name_their_rule_marketplace_and_group() -> None:
    history = (sale(5, "smshub", "whatsapp", T), sale(6, "smshub", "vkcom", T + 5, status=4))
    stored = (
        ExclusionFact(ServiceName("whatsapp"), "*", "sold", T, OperationId(5)),
        ExclusionFact(ServiceName("astropay"), "*", "group", T, OperationId(5)),
        ExclusionFact(ServiceName("ok"), "*", "refused", T, None),
        ExclusionFact(ServiceName("vkcom"), "smshub", "retries", T + 5, OperationId(6)),
        ExclusionFact(ServiceName("tiktok"), "*", "blocked", T, None),
    )
    reasons = why_not(facts(operations=history, exclusions=stored), RULES, "smshub", None, T + 10)
    texts = {r.rule: r.text for r in reasons}
    assert texts["group"] == (
        "excluded from astropay by group whatsapp+astropay:"
        " sold for whatsapp on smshub at 2023-11-14 22:13 UTC"
    )
    assert texts["sold"].startswith("sold for whatsapp on smshub at 2023-11-14 22:13 UTC")
    assert texts["refused"].startswith("refused for ok (status 1)")
    assert texts["retries"].startswith("retries for vkcom used up (status 4) on smshub")
    assert texts["blocked"].startswith("blocked for tiktok by the owner")
    # Asked for one service: only what binds it; on another marketplace: no spent retry budget.
    only = why_not(facts(operations=history, exclusions=stored), RULES, "smshub", ServiceName("astropay"), T)
    assert rules_of(only) == ["group"]
    elsewhere = why_not(facts(replace(SIM, lane="grizzly"), history, stored), RULES, "grizzly", None, T)
    assert "retries" not in rules_of(elsewhere)


def test_lanes_switches_and_marketplaces_are_named() -> None:
    assert rules_of(why_not(facts(), RULES, "onlinesim", None, T)) == ["lane"]
    assert "in smshub's lane" in why_not(facts(), RULES, "onlinesim", None, T)[0].text
    leaving = replace(SIM, lane_target="grizzly")
    assert rules_of(why_not(facts(leaving), RULES, "smshub", None, T)) == ["leaving"]
    pinned = replace(SIM, marketplaces=frozenset({"onlinesim"}))
    assert (
        "not allowed on smshub by its CSV marketplaces (onlinesim)"
        in why_not(facts(pinned), RULES, "smshub", None, T)[0].text
    )
    off = replace(SIM, online=False, operator_enabled=False, enabled=False)
    assert rules_of(why_not(facts(off), RULES, "smshub", None, T)) == ["disabled", "offline"]
    assert rules_of(why_not(facts(), RULES, "nowhere", None, T)) == ["not_enabled"]
