"""Sign-in and secrets (issue 12, items 7 and 10): back-off, metrics token, secret lengths."""

from __future__ import annotations

import logging

import pytest

from simgate import logsecrets
from simgate.config import SettingsError, load_settings
from simgate.domain.throttle import Throttle
from simgate.logsecrets import MASK, SecretRedactor, short_secret_warning
from tests.conftest import ADMIN_TOKEN, INTAKE_TOKEN, KEY, LiveServer
from tests.conftest import test_settings as settings_for

METRICS_TOKEN = "metrics-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INTAKE = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
WRONG = {"Authorization": "Bearer wrong-guess"}


def test_throttle_backs_off_exponentially_and_forgets() -> None:
    throttle = Throttle(free=3, first=1.0, longest=8.0, forget_after=100.0)
    waits = [throttle.failed("a", 0.0) for _ in range(8)]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]
    assert throttle.wait("a", 3.0) == 5.0
    assert throttle.wait("b", 0.0) == 0.0
    assert throttle.wait("a", 200.0) == 0.0  # forgotten
    assert throttle.failed("a", 200.0) == 0.0


def test_throttle_memory_is_bounded() -> None:
    throttle = Throttle(free=0, max_tracked=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(throttle._records) == 100


def test_failed_sign_ins_back_off_even_for_the_right_token(live_server: LiveServer) -> None:
    with live_server.client() as client:
        for _ in range(11):
            assert client.post("/login", data={"token": "wrong-guess"}).status_code == 401
        refused = client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/api/numbers", headers=ADMIN).status_code == 429
        # Other realms of the same address, and the marketplace, are not held up.
        intake = client.post("/intake/sms", json={}, headers=INTAKE)
        assert intake.status_code == 400
        assert client.post("/onlinesim/getServices", json={"key": KEY}).status_code == 200


def test_failed_intake_bearers_back_off(live_server: LiveServer) -> None:
    with live_server.client() as client:
        for _ in range(11):
            assert client.post("/intake/sms", json={}, headers=WRONG).status_code == 401
        right = client.post("/intake/sms", json={}, headers=INTAKE)
        assert right.status_code == 429


def test_metrics_need_the_token_when_one_is_set(sqlite_url: str) -> None:
    server = LiveServer(settings_for(sqlite_url, metrics_token=METRICS_TOKEN)).start()
    try:
        with server.client() as client:
            assert client.get("/metrics").status_code == 401
            assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
            ok = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert ok.status_code == 200
            assert "simgate_" in ok.text
    finally:
        server.stop()


def test_without_a_token_metrics_are_for_this_host_only(live_server: LiveServer) -> None:
    with live_server.client() as client:
        assert client.get("/metrics").status_code == 200
        forwarded = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.status_code == 403
        assert "SIMGATE_METRICS_TOKEN" in forwarded.json()["error"]


@pytest.mark.parametrize("name", ["INTAKE_TOKEN", "ADMIN_TOKEN", "METRICS_TOKEN"])
def test_owner_chosen_secrets_must_be_16_characters(name: str) -> None:
    with pytest.raises(SettingsError, match=f"SIMGATE_{name}: must be at least 16 characters"):
        load_settings({f"SIMGATE_{name}": "x" * 15})
    assert load_settings({f"SIMGATE_{name}": "x" * 16})


def test_issued_secrets_of_any_length_are_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert "k1" in logsecrets.secrets_of(load_settings({"SIMGATE_ONLINESIM_KEY": "k1"}))
    with caplog.at_level(logging.WARNING):
        short_secret_warning("hardware.test.password", "1")
    assert "hardware.test.password is only 1 characters" in caplog.text


def test_short_secrets_are_redacted_as_whole_words_only() -> None:
    redactor = SecretRedactor(["7", "ab", "long-enough-secret"])
    text = "key=ab tab abc port 7 of 17 7; long-enough-secret!"
    assert redactor.redact(text) == f"key={MASK} tab abc port {MASK} of 17 {MASK}; {MASK}!"


def test_a_short_key_is_redacted_in_a_real_log_line(caplog: pytest.LogCaptureFixture) -> None:
    redactor = SecretRedactor(["k1"])
    record = logging.LogRecord("x", logging.INFO, "", 0, "GET_NUMBER key=%s from %s", ("k1", "k1x"), None)
    redactor.filter(record)
    assert record.getMessage() == f"GET_NUMBER key={MASK} from k1x"


def test_metrics_token_is_redacted(sqlite_url: str) -> None:
    from simgate.logsecrets import secrets_of

    assert METRICS_TOKEN in secrets_of(settings_for(sqlite_url, metrics_token=METRICS_TOKEN))


def test_a_client_error_is_not_a_failure(live_server: LiveServer) -> None:
    with live_server.client() as client:
        for _ in range(30):
            response = client.post("/intake/sms", content=b"{", headers=INTAKE)
            assert response.status_code == 400
        assert client.post("/intake/sms", json={}, headers=INTAKE).status_code == 400


def test_device_secrets_are_redacted_and_short_ones_warned(caplog: pytest.LogCaptureFixture) -> None:
    line = {"phone": "79281234567", "password": "line-two-secret"}
    tables = {
        "goip": {"password": "pw", "lines": {"goip2": line}},
        "ejoin": {"devices": {"box1": {"token": "ejoin-device-token"}}},
        "android": {"devices": {"pixel": {"signing_key": "k"}}},
    }
    settings = load_settings({}).model_copy(update={"hardware": tables})
    with caplog.at_level(logging.WARNING):
        found = logsecrets.secrets_of(settings)
        logsecrets.warn_short_secrets(settings)
    assert {"pw", "line-two-secret", "ejoin-device-token", "k"} <= set(found)
    assert "hardware.goip.password is only 2 characters" in caplog.text
    assert "hardware.android.devices.pixel.signing_key is only 1 characters" in caplog.text


def test_serving_with_the_worker_warns_about_a_short_key_once(caplog: pytest.LogCaptureFixture) -> None:
    """build_app protects the logs and builds the worker, which leaves that to its caller."""
    from simgate.bootstrap import build_worker, protect_logs
    from simgate.storage.memory import MemoryStore

    settings = load_settings({"SIMGATE_ONLINESIM_KEY": "k1"})
    with caplog.at_level(logging.WARNING):
        protect_logs(settings)
        build_worker(settings, MemoryStore())
    assert caplog.text.count("[marketplaces.onlinesim] key is only 2 characters") == 1
