"""The alert rules, pure: what counts as a problem and when it fires or resolves."""

from __future__ import annotations

from simgate.domain.alerts import (
    AlertRules,
    Condition,
    Observation,
    changes,
    conditions,
)

NOW = 1_000_000.0
RULES = AlertRules()


def keys(seen: Observation, rules: AlertRules = RULES) -> list[str]:
    return [c.key for c in conditions(rules, seen)]


def test_a_quiet_farm_raises_nothing() -> None:
    assert keys(Observation(now=NOW)) == []


def test_a_push_pending_past_the_threshold_fires_and_not_before() -> None:
    assert keys(Observation(now=NOW, oldest_pending_at=NOW - 9 * 60, pending=2)) == []
    found = conditions(RULES, Observation(now=NOW, oldest_pending_at=NOW - 12 * 60, pending=2))
    assert [c.key for c in found] == ["push_pending"]
    assert "2 SMS push(es) pending, the oldest for 12 min" in found[0].text


def test_a_gateway_that_never_spoke_is_silent_from_the_start_of_watching() -> None:
    seen = Observation(
        now=NOW,
        gateways={"goip": NOW - 20 * 60, "ejoin": NOW - 60, "modem": None},
        watching_since=NOW - 16 * 60,
    )
    assert keys(seen) == ["gateway_silent:goip", "gateway_silent:modem"]
    assert keys(seen, AlertRules(gateway_silent_minutes=30)) == []


def test_any_marketplace_name_is_watched_once_it_called() -> None:
    seen = Observation(now=NOW, marketplaces={"onlinesim": NOW - 31 * 60, "smshub": NOW - 10})
    assert keys(seen) == ["marketplace_silent:onlinesim"]


def test_failing_writes_and_failing_sims() -> None:
    seen = Observation(now=NOW, write_error="disk full", failing_sims={"79001": 3, "79002": 2})
    assert keys(seen) == ["database_writes", "sim_failing:79001"]
    assert keys(seen, AlertRules(sim_failures=5)) == ["database_writes"]


def test_zero_turns_a_rule_off() -> None:
    off = AlertRules(
        pending_push_minutes=0, gateway_silent_minutes=0, marketplace_silent_minutes=0, sim_failures=0
    )
    seen = Observation(
        now=NOW, oldest_pending_at=0.0, pending=1, gateways={"goip": None},
        marketplaces={"onlinesim": 0.0}, failing_sims={"79001": 99},
    )  # fmt: skip
    assert keys(seen, off) == []


def test_an_alert_fires_once_and_resolves_once() -> None:
    gateway = Condition("gateway_silent:goip", "gateway_silent", "Gateway goip silent for 20 min")
    first = changes({}, [gateway])
    assert [(c.key, c.event) for c in first] == [("gateway_silent:goip", "firing")]
    # Still silent, with a new text: nothing new to say.
    later = Condition("gateway_silent:goip", "gateway_silent", "Gateway goip silent for 40 min")
    assert changes({"gateway_silent:goip": "gateway_silent"}, [later]) == []
    resolved = changes({"gateway_silent:goip": "gateway_silent"}, [])
    assert [(c.key, c.event) for c in resolved] == [("gateway_silent:goip", "resolved")]
    assert resolved[0].text == "Resolved: gateway goip speaks again"
