"""HeroSMS's ping as a health check (marketplaces/agent/ping.py) and the agent settings it
needs: where the ping goes, what counts as healthy, and a User-Agent that is never empty."""

from __future__ import annotations

import pytest

from simgate.config import load_settings
from simgate.marketplaces.agent.ping import judge, ping_url_for
from simgate.settings_error import SettingsError


@pytest.mark.parametrize(
    ("push", "ping"),
    [
        ("https://api.partnersservices.net/agent/api/sms", "https://api.partnersservices.net/agent/api/ping"),
        ("http://127.0.0.1:8092/agent/api/sms", "http://127.0.0.1:8092/agent/api/ping"),
        ("https://hs.example/v2/agent/api/sms?x=1", "https://hs.example/v2/agent/api/ping"),
        ("https://hs.example/push", "https://hs.example/agent/api/ping"),
    ],
)
def test_the_ping_sits_next_to_the_push_url(push: str, ping: str) -> None:
    assert ping_url_for(push) == ping


def test_only_a_2xx_with_a_success_body_is_healthy() -> None:
    assert judge(200, b'{"status":"SUCCESS"}', None) is None
    assert judge(None, b"", "timeout after 5s") == "timeout after 5s"
    assert judge(503, b'{"status":"SUCCESS"}', None) == "HTTP 503"
    assert judge(200, b"<html>", None) == "answer is not JSON"
    assert "not SUCCESS" in (judge(200, b'{"status":"ERROR","error":"busy"}', None) or "")


def test_herosms_pings_by_default_and_an_explicit_url_or_zero_wins() -> None:
    base = {"SIMGATE_HEROSMS_KEY": "k"}
    assert load_settings(base).marketplaces["herosms"].ping_seconds == 60
    chosen = load_settings(base | {"SIMGATE_HEROSMS_PING_URL": "https://hs.example/ping/"})
    assert chosen.marketplaces["herosms"].ping_url == "https://hs.example/ping"
    assert (
        load_settings(base | {"SIMGATE_HEROSMS_PING_SECONDS": "0"}).marketplaces["herosms"].ping_seconds == 0
    )
    assert load_settings({"SIMGATE_SMSHUB_KEY": "k"}).marketplaces["smshub"].ping_seconds == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIMGATE_GRIZZLY_USER_AGENT", "  "),
        ("SIMGATE_HEROSMS_PING_URL", "ftp://x"),
        ("SIMGATE_HEROSMS_PING_SECONDS", "-1"),
    ],
)
def test_bad_agent_settings_stop_start_up_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({"SIMGATE_GRIZZLY_KEY": "k", "SIMGATE_HEROSMS_KEY": "k", name: value})
