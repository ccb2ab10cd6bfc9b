"""The pure rules of SMS delivery: retry and give-up, the PUSH_SMS payload and its verdicts,
recognising a resent SMS and routing an SMS to its operation (spec 5.4, 6.4, 8.5)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from simgate import __version__
from simgate.delivery.retry import RetryPolicy
from simgate.domain.messages import (
    MAX_CLOCK_SKEW_SECONDS,
    ROUTING_GRACE_SECONDS,
    DueDelivery,
    IncomingMessage,
    PushReply,
    Verdict,
    dedup_key,
    route,
    routing_time,
)
from simgate.domain.model import OperationKind
from simgate.domain.types import (
    OperationId,
    PhoneNumber,
)
from simgate.marketplaces.onlinesim.push import OnlinesimPush
from tests.factories import make_operation

T0 = 1_800_000_000.0
BASE = "http://os.example:9000"
KEY = "partner-key"


def make_due(**overrides: Any) -> DueDelivery:
    values: dict[str, Any] = {
        "id": 11,
        "attempts": 0,
        "created_at": T0,
        "marketplace": "onlinesim",
        "operation_id": OperationId(355),
        "kind": OperationKind.ACTIVATION,
        "operation_finished_at": None,
        "message_id": 9001,
        "phone": PhoneNumber("79088081050"),
        "sender": "Instagram",
        "text": "Your verification code is 800142",
    }
    values.update(overrides)
    return DueDelivery(**values)


def reply(status: int | None, body: Any = b"", error: str | None = None) -> PushReply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return PushReply(status, raw, 12.5, error)


PUSH = OnlinesimPush(BASE, KEY)


# --- RetryPolicy -----------------------------------------------------------------------


def test_the_next_attempt_comes_one_delay_later() -> None:
    assert RetryPolicy().next_attempt(T0) == T0 + 10.0
    assert RetryPolicy(delay=0.2).next_attempt(T0) == pytest.approx(T0 + 0.2)


@pytest.mark.parametrize("kind", [OperationKind.ACTIVATION, OperationKind.RENT])
def test_a_fresh_failure_of_an_open_operation_is_retried(kind: OperationKind) -> None:
    policy = RetryPolicy()
    item = make_due(kind=kind)
    assert policy.give_up_reason(item, T0 + 1) is None
    assert policy.after(Verdict.RETRY, item, T0 + 1) == ("pending", None)


def test_pushes_for_a_finished_operation_continue_through_the_grace_then_stop() -> None:
    policy = RetryPolicy(finished_grace=120.0)
    item = make_due(operation_finished_at=T0 + 30)
    assert policy.give_up_reason(item, T0 + 30 + 119.9) is None
    assert policy.after(Verdict.RETRY, item, T0 + 30 + 119.9) == ("pending", None)
    assert policy.give_up_reason(item, T0 + 30 + 120) == "operation finished"
    assert policy.after(Verdict.RETRY, item, T0 + 30 + 120) == ("given_up", "operation finished")


def test_an_activation_push_is_given_up_twenty_minutes_after_the_sms_was_queued() -> None:
    policy = RetryPolicy()
    item = make_due(kind=OperationKind.ACTIVATION)
    assert policy.give_up_reason(item, T0 + 20 * 60 - 0.001) is None
    assert policy.give_up_reason(item, T0 + 20 * 60) == "undelivered for 20 minutes"
    state, reason = policy.after(Verdict.RETRY, item, T0 + 21 * 60)
    assert (state, reason) == ("given_up", "undelivered for 20 minutes")


def test_a_rent_push_outlives_the_activation_window_and_stops_at_the_rent_window() -> None:
    policy = RetryPolicy()
    item = make_due(kind=OperationKind.RENT)
    assert policy.give_up_reason(item, T0 + 3600) is None
    assert policy.give_up_reason(item, T0 + 7 * 24 * 3600 - 1) is None
    reason = policy.give_up_reason(item, T0 + 7 * 24 * 3600)
    assert reason == f"undelivered for {7 * 24 * 60} minutes"


def test_the_window_counts_from_when_the_sms_was_queued_not_from_the_attempt_count() -> None:
    policy = RetryPolicy(activation_window=60.0)
    many_tries = make_due(attempts=500, created_at=T0)
    assert policy.give_up_reason(many_tries, T0 + 59) is None
    assert policy.give_up_reason(make_due(attempts=0, created_at=T0 - 61), T0) is not None


def test_acknowledged_and_rejected_pushes_are_final_whatever_the_clock_says() -> None:
    policy = RetryPolicy()
    stale = make_due(operation_finished_at=T0 - 3600, created_at=T0 - 86400)
    assert policy.after(Verdict.DELIVERED, stale, T0) == ("delivered", None)
    assert policy.after(Verdict.REJECTED, stale, T0) == ("rejected", None)
    assert policy.after(Verdict.DELIVERED, make_due(), T0) == ("delivered", None)
    assert policy.after(Verdict.REJECTED, make_due(), T0) == ("rejected", None)


# --- OnlinesimPush.request -------------------------------------------------------------


def payload(item: DueDelivery, push: OnlinesimPush = PUSH) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(push.request(item).body.decode("utf-8"))
    return decoded


def test_an_activation_push_has_exactly_the_documented_fields() -> None:
    request = PUSH.request(make_due())
    assert request.url == BASE + "/v1/PUSH_SMS"
    assert json.loads(request.body) == {
        "action": "PUSH_SMS",
        "key": KEY,
        "smsId": 355,
        "phone": "79088081050",
        "phoneFrom": "Instagram",
        "text": "Your verification code is 800142",
    }


def test_a_rent_push_goes_to_the_rent_path_and_says_service_rent() -> None:
    request = PUSH.request(make_due(kind=OperationKind.RENT))
    assert request.url == BASE + "/v1/PUSH_SMS_RENT"
    body = json.loads(request.body)
    assert body["action"] == "PUSH_SMS"
    assert body["service"] == "rent"
    assert set(body) == {"action", "key", "smsId", "phone", "phoneFrom", "text", "service"}


def test_only_rent_pushes_carry_a_service() -> None:
    assert "service" not in payload(make_due(kind=OperationKind.ACTIVATION))


def test_configured_paths_are_used() -> None:
    push = OnlinesimPush(BASE, KEY, path="/push", rent_path="/pushSmsRent")
    assert push.request(make_due()).url == BASE + "/push"
    assert push.request(make_due(kind=OperationKind.RENT)).url == BASE + "/pushSmsRent"


def test_sms_id_is_the_operation_id_by_default_and_the_message_id_on_request() -> None:
    item = make_due(operation_id=OperationId(355), message_id=9001)
    assert payload(item)["smsId"] == 355
    assert payload(item, OnlinesimPush(BASE, KEY, sms_id="message"))["smsId"] == 9001
    assert payload(item, OnlinesimPush(BASE, KEY, sms_id="operation"))["smsId"] == 355


def test_sms_id_is_a_json_integer() -> None:
    assert isinstance(payload(make_due())["smsId"], int)
    assert isinstance(payload(make_due(), OnlinesimPush(BASE, KEY, sms_id="message"))["smsId"], int)


def test_phone_is_a_string_of_digits() -> None:
    body = payload(make_due(phone=PhoneNumber("4915112345678")))
    assert body["phone"] == "4915112345678"
    assert isinstance(body["phone"], str)


def test_headers_name_the_content_type_the_key_and_the_client() -> None:
    headers = PUSH.request(make_due()).headers
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["User-Agent"] == f"simgate/{__version__}"


@pytest.mark.parametrize(
    "text",
    [
        "Код подтверждения: 4821. Никому его не сообщайте",  # noqa: RUF001
        "Your code 🔐 123-456 ✅👍🏽",
        'line one\nline two\ttab "quoted" \\ back',
        "x" * 3000,
        "\u200b zero width and \u0000 nul",
    ],
)
def test_the_text_and_sender_are_sent_exactly_as_utf_8(text: str) -> None:
    request = PUSH.request(make_due(text=text, sender="Сбер"))  # noqa: RUF001
    body = json.loads(request.body.decode("utf-8"))
    assert body["text"] == text
    assert body["phoneFrom"] == "Сбер"  # noqa: RUF001


# --- OnlinesimPush.verdict -------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        reply(200, {"status": "SUCCESS"}),
        reply(200, {"status": "success"}),
        reply(200, b""),
        reply(200, {}),
        reply(200, b"OK"),
        reply(200, {"result": 1}),
    ],
)
def test_http_200_without_a_contrary_status_is_delivered(answer: PushReply) -> None:
    assert PUSH.verdict(answer) == (Verdict.DELIVERED, None)


def test_http_200_with_status_error_is_retried() -> None:
    assert PUSH.verdict(reply(200, {"status": "ERROR", "error": "try later"})) == (Verdict.RETRY, None)


FINAL = ["NO_OPERATION", "NO_OP", "BAD_SERVICE", "IGNORED", "SERVICE_BAN"]


@pytest.mark.parametrize("code", FINAL)
@pytest.mark.parametrize("field", ["status", "response"])
@pytest.mark.parametrize("http", [200, 404])
def test_final_codes_are_rejections_carrying_the_code(code: str, field: str, http: int) -> None:
    assert PUSH.verdict(reply(http, {field: code})) == (Verdict.REJECTED, code)


def test_a_final_code_is_recognised_in_any_case_and_padding() -> None:
    assert PUSH.verdict(reply(404, {"status": " no_operation "})) == (Verdict.REJECTED, "NO_OPERATION")


@pytest.mark.parametrize("http", [200, 404])
def test_a_final_code_in_the_v1_error_envelope_is_a_rejection(http: int) -> None:
    # Spec 4: v1 errors are {"status": "ERROR", "error": ...}; the code may travel in `error`.
    answer = reply(http, {"status": "ERROR", "error": "NO_OPERATION"})
    assert PUSH.verdict(answer) == (Verdict.REJECTED, "NO_OPERATION")


@pytest.mark.parametrize(
    "answer",
    [
        reply(500, b""),
        reply(500, {"status": "ERROR"}),
        reply(502, b"<html>Bad Gateway</html>"),
        reply(503, {"status": "SUCCESS"}),
        reply(429, {"response": "TOO_MANY_ATTEMPTS"}),
        reply(404, b""),
        reply(404, {"status": "ERROR", "error": "not found"}),
        reply(401, {"response": "ERROR_WRONG_KEY"}),
        reply(201, {"status": "SUCCESS"}),
        reply(None, b"", "timeout after 10s"),
        reply(None, b"", "ClientConnectorError: Connection refused"),
    ],
)
def test_anything_else_is_retried(answer: PushReply) -> None:
    assert PUSH.verdict(answer) == (Verdict.RETRY, None)


def test_a_transport_error_is_retried_even_with_a_status() -> None:
    assert PUSH.verdict(reply(200, {"status": "SUCCESS"}, "read interrupted")) == (Verdict.RETRY, None)


# --- dedup_key -------------------------------------------------------------------------


def incoming(**overrides: Any) -> IncomingMessage:
    values: dict[str, Any] = {
        "phone": PhoneNumber("79281234567"),
        "sender": "VK",
        "text": "VK: 33708",
        "source": "http",
        "message_key": None,
        "received_at": T0,
    }
    values.update(overrides)
    return IncomingMessage(**values)


def test_the_hardware_id_is_the_key_when_there_is_one() -> None:
    assert dedup_key(incoming(message_key="port7-000123")) == "port7-000123"
    assert dedup_key(incoming(message_key="port7-000123", received_at=None)) == "port7-000123"


def test_without_an_id_or_a_time_an_sms_cannot_be_recognised() -> None:
    assert dedup_key(incoming(message_key=None, received_at=None)) is None
    assert dedup_key(incoming(message_key="", received_at=None)) is None


def test_a_timestamped_sms_without_an_id_gets_a_stable_fingerprint() -> None:
    key = dedup_key(incoming())
    assert key is not None
    assert key.startswith("auto:")
    assert len(key) <= 200
    assert dedup_key(incoming()) == key


@pytest.mark.parametrize(
    "change",
    [
        {"phone": PhoneNumber("79281234568")},
        {"sender": "VK2"},
        {"text": "VK: 33709"},
        {"received_at": T0 + 1},
        {"received_at": T0 + 0.001},
    ],
)
def test_the_fingerprint_changes_with_every_part_of_the_sms(change: dict[str, Any]) -> None:
    assert dedup_key(incoming(**change)) != dedup_key(incoming())


def test_the_fingerprint_cannot_be_forged_by_moving_text_between_fields() -> None:
    a = incoming(sender="VK", text="code 1")
    b = incoming(sender="VK code", text="1")
    assert dedup_key(a) != dedup_key(b)


# --- route -----------------------------------------------------------------------------


def test_no_operation_means_unrouted() -> None:
    assert route(None, T0) is None
    assert route(None, None) is None


def test_a_finished_operation_gets_no_sms() -> None:
    finished = make_operation(finished_at=T0 + 60, finish_status=3)
    assert route(finished, T0 + 10) is None
    assert route(finished, None) is None


def test_an_open_operation_gets_its_sms() -> None:
    operation = make_operation(opened_at=T0)
    assert route(operation, T0 + 5) == operation
    assert route(operation, None) == operation
    assert route(operation, T0 + 10**6) == operation


def test_an_sms_slightly_older_than_its_operation_still_belongs_to_it() -> None:
    operation = make_operation(opened_at=T0)
    assert ROUTING_GRACE_SECONDS == 60.0
    assert route(operation, T0 - 1) == operation
    assert route(operation, T0 - ROUTING_GRACE_SECONDS) == operation


def test_an_sms_older_than_the_grace_belonged_to_the_previous_buyer() -> None:
    operation = make_operation(opened_at=T0)
    assert route(operation, T0 - ROUTING_GRACE_SECONDS - 0.001) is None
    assert route(operation, T0 - 3600) is None


def test_routing_does_not_depend_on_the_kind_of_operation() -> None:
    rent = make_operation(kind=OperationKind.RENT, service=None, opened_at=T0)
    assert route(rent, T0 + 1) == rent
    assert route(replace(rent, opened_at=T0 + 120), T0) is None


# --- routing time: the device's clock only where plausible (issue 12.6) ------------------


def test_a_plausible_device_time_is_used_for_routing() -> None:
    assert routing_time(T0 - 200, T0) == T0 - 200
    assert routing_time(T0 + 5, T0) == T0 + 5
    assert routing_time(T0 - 30, T0, max_skew=60) == T0 - 30


def test_a_device_time_far_from_ours_is_not_believed() -> None:
    day = 24 * 3600.0
    assert routing_time(T0 - day, T0) == T0
    assert routing_time(T0 + day, T0) == T0
    assert routing_time(T0 - MAX_CLOCK_SKEW_SECONDS - 1, T0) == T0
    assert routing_time(T0 - 61, T0, max_skew=60) == T0


def test_without_a_device_time_ours_counts() -> None:
    assert routing_time(None, T0) == T0


def test_a_gateway_a_day_behind_still_reaches_the_open_operation() -> None:
    operation = make_operation(opened_at=T0)
    stamped = T0 + 30 - 24 * 3600.0  # the SMS came 30 s after the opening, by our clock
    assert route(operation, stamped) is None  # what trusting the device did: lost
    assert route(operation, routing_time(stamped, T0 + 30)) == operation
