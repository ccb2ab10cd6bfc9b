"""The marketplace request log line: chosen fields only, never the key."""

from __future__ import annotations

import gzip

from simgate.http.requestlog import _decode, describe


def test_describe_names_the_call_the_operation_and_the_outcome() -> None:
    asked = {
        "action": "FINISH_ACTIVATION",
        "key": "partner-secret",
        "activationId": 7,
        "status": 3,
        "sum": 12.5,
    }
    line = describe("finishActivation", asked, 200, {"status": "SUCCESS"}, 1.234)
    assert line == (
        "onlinesim finishActivation action=FINISH_ACTIVATION operation=7 status=3 sum=12.5"
        " -> 200 SUCCESS (1.2 ms)"
    )
    assert "partner-secret" not in line


def test_describe_an_issued_number_and_an_error() -> None:
    issued = describe(
        "getNumber",
        {"action": "GET_NUMBER"},
        200,
        {"status": "SUCCESS", "number": 7928, "activationId": 3},
        0.5,
    )
    assert issued.endswith("-> 200 SUCCESS operation=3 number=7928 (0.5 ms)")
    refused = describe("getNumber", {}, 401, {"status": "ERROR", "error": "wrong or missing key"}, 0.1)
    assert refused == "onlinesim getNumber -> 401 ERROR error='wrong or missing key' (0.1 ms)"


def test_decode_reads_gzip_and_the_status_of_a_cut_answer() -> None:
    assert _decode(gzip.compress(b'{"status":"NO_NUMBERS"}'), True) == {"status": "NO_NUMBERS"}
    assert _decode(b'{"status":"SUCCESS","countryList":[{"coun', False) == {"status": "SUCCESS"}
    assert _decode(b"[1, 2]", False) == {}
    assert _decode(b"not gzip", True) == {}
