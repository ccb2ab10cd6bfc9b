"""The marketplace request log line: chosen fields only, never the key."""

from __future__ import annotations

import logging
import time

import pytest

from simgate.http.requestlog import CallLine, describe, log_call
from simgate.marketplaces.onlinesim.wire import decoder


def test_describe_names_the_call_the_operation_and_the_outcome() -> None:
    asked = {
        "action": "FINISH_ACTIVATION",
        "key": "partner-secret",
        "activationId": 7,
        "status": 3,
        "sum": 12.5,
    }
    line = describe("onlinesim", "finishActivation", asked, 200, {"status": "SUCCESS"}, 1.234)
    assert line == (
        "onlinesim finishActivation action=FINISH_ACTIVATION operation=7 status=3 sum=12.5"
        " -> 200 SUCCESS (1.2 ms)"
    )
    assert "partner-secret" not in line


def test_describe_an_issued_number_and_an_error() -> None:
    issued = describe(
        "onlinesim",
        "getNumber",
        {"action": "GET_NUMBER"},
        200,
        {"status": "SUCCESS", "number": 7928, "activationId": 3},
        0.5,
    )
    assert issued.endswith("-> 200 SUCCESS operation=3 number=7928 (0.5 ms)")
    refused = describe(
        "onlinesim", "getNumber", {}, 401, {"status": "ERROR", "error": "wrong or missing key"}, 0.1
    )
    assert refused == "onlinesim getNumber -> 401 ERROR error='wrong or missing key' (0.1 ms)"


def test_log_call_uses_the_decoded_request_and_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simgate.requests")
    asked = decoder.decode(
        b'{"action":"GET_NUMBER","key":"partner-secret","country":"russia","service":"vk"}'
    )
    log_call("onlinesim", "getNumber", asked, 200, {"status": "NO_NUMBERS"}, time.perf_counter())
    log_call(
        "onlinesim",
        "getNumber",
        None,
        400,
        {"status": "ERROR", "error": "malformed request"},
        time.perf_counter(),
    )
    log_call("onlinesim", "finishActivation", None, 500, {"status": "EXCEPTION"}, time.perf_counter())
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "simgate.requests"]
    assert lines[0][1].startswith(
        "onlinesim getNumber action=GET_NUMBER country=russia service=vk -> 200 NO_NUMBERS"
    )
    assert lines[1][1].startswith("onlinesim getNumber -> 400 ERROR error='malformed request'")
    assert lines[2][0] == logging.ERROR
    assert all("partner-secret" not in line for _, line in lines)


def test_a_queued_call_line_keeps_only_the_answer_fields_it_quotes() -> None:
    # A line waits in the log queue: it must not hold a whole GET_SERVICES answer alive.
    answer = {"status": "SUCCESS", "countryList": [{"country": "russia"}] * 1000, "number": 7}
    line = CallLine("onlinesim", "getServices", {}, 200, answer, 1.0)
    assert line.answer == {"status": "SUCCESS", "number": 7}
    assert str(line) == describe("onlinesim", "getServices", {}, 200, answer, 1.0)
