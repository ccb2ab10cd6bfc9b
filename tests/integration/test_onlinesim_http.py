"""Onlinesim Reseller API v1 over real HTTP against a real SQLite file (issue 2, CONTRACT.md).

Every test talks to `live_server` (uvicorn on loopback) with httpx, as the marketplace would.
State is checked through the server's own store so "changes nothing" means nothing at all.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simgate import catalogue
from simgate.domain.model import Number, NumberSpec, Operation
from simgate.domain.read_model import NumberQuery
from simgate.domain.types import CountryName, OperatorName, PhoneNumber, ServiceName
from simgate.services.inventory import import_numbers
from simgate.storage import schema
from simgate.storage.ports import UnitOfWork
from tests.conftest import KEY, LiveServer
from tests.conftest import test_settings as settings_for
from tests.factories import recent_operations

JSON = "application/json; charset=utf-8"
TELEGRAM, VK, WHATSAPP = "telegram", "vkcom", "whatsapp"

Answer = dict[str, Any]
Availability = dict[str, dict[str, dict[str, int]]]


def spec(
    phone: str, country: str = "russia", operator: str = "beeline", *, rent: bool = True, enabled: bool = True
) -> NumberSpec:
    return NumberSpec(
        PhoneNumber(phone), CountryName(country), OperatorName(operator), "", rentable=rent, enabled=enabled
    )


def russians(count: int, operator: str = "beeline", start: int = 0, *, rent: bool = True) -> list[NumberSpec]:
    return [spec(f"7928{start + i:07d}", operator=operator, rent=rent) for i in range(count)]


def seed(server: LiveServer, *specs: NumberSpec) -> None:
    assert server.store is not None
    server.store.run(lambda uow: import_numbers(uow, specs, time.time()))


def snapshot(server: LiveServer) -> tuple[list[Number], list[Operation], dict[str, set[ServiceName]]]:
    assert server.store is not None

    def work(uow: UnitOfWork) -> tuple[list[Number], dict[str, set[ServiceName]]]:
        numbers = uow.numbers.search(NumberQuery(limit=100_000))
        sold = {str(n.phone): uow.numbers.excluded_services(n.id) for n in numbers}
        return numbers, sold

    numbers, sold = server.store.run(work)
    return numbers, server.store.run_report(recent_operations), sold


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "simgate.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def live_server(template_db: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """conftest's live_server, on a copy of a database migrated once per module (faster)."""
    path = tmp_path / "simgate.db"
    shutil.copyfile(template_db, path)
    server = LiveServer(settings_for(f"sqlite:///{path}")).start()
    yield server
    server.stop()


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as http:
        yield http


@dataclass(frozen=True)
class Shared:
    server: LiveServer
    client: httpx.Client
    open_id: int
    """An open activation, for FINISH requests that must not touch it."""


@pytest.fixture(scope="module")
def shared(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One server for the many requests that must be refused and change nothing."""
    path = tmp_path_factory.mktemp("shared") / "simgate.db"
    shutil.copyfile(template_db, path)
    server = LiveServer(settings_for(f"sqlite:///{path}")).start()
    seed(server, *russians(5, start=500))
    with server.client() as http:
        _, open_id = issued(get_number(http, WHATSAPP))
        yield Shared(server, http, open_id)
    server.stop()


def post(client: httpx.Client, path: str, **fields: Any) -> httpx.Response:
    return client.post(path, json={"key": KEY, **fields})


def ok(response: httpx.Response) -> Answer:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON
    answer = response.json()
    assert isinstance(answer, dict)
    return answer


def refused(response: httpx.Response, status: int | None = None) -> str:
    """A 4xx with the documented error shape; returns the error text."""
    if response.status_code >= 500:
        # Let the server thread finish logging its traceback first: Python 3.11's traceback
        # formatting calls ast.parse, which races with pytest's own (cpython gh-106905) and
        # turns this failure into a pytest INTERNALERROR.
        time.sleep(0.5)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON
    answer = response.json()
    assert answer["status"] == "ERROR", answer
    assert isinstance(answer["error"], str)
    assert answer["error"]
    assert "Traceback" not in response.text
    return str(answer["error"])


def availability(client: httpx.Client, path: str = "/onlinesim/getServices") -> Availability:
    answer = ok(post(client, path, action="GET_SERVICES"))
    assert answer["status"] == "SUCCESS"
    return {entry["country"]: entry["operatorMap"] for entry in answer["countryList"]}


def get_number(
    client: httpx.Client,
    service: str = TELEGRAM,
    country: str = "russia",
    operator: str = "any",
    **extra: Any,
) -> Answer:
    return ok(
        post(
            client,
            "/onlinesim/getNumber",
            action="GET_NUMBER",
            country=country,
            operator=operator,
            service=service,
            sum=40,
            **extra,
        )
    )


def get_rent(client: httpx.Client, country: str = "russia", operator: str = "any", **extra: Any) -> Answer:
    return ok(
        post(
            client,
            "/onlinesim/getNumberRent",
            action="GET_NUMBER",
            country=country,
            operator=operator,
            service="rent",
            sum=300,
            **extra,
        )
    )


def finish(client: httpx.Client, activation_id: int, status: int, *, rent: bool = False) -> Answer:
    path = "/onlinesim/finishActivationRent" if rent else "/onlinesim/finishActivation"
    extra = {"service": "rent"} if rent else {}
    return ok(
        post(
            client,
            path,
            action="FINISH_ACTIVATION",
            activationId=activation_id,
            status=status,
            sum=4.5,
            **extra,
        )
    )


def issued(answer: Answer) -> tuple[int, int]:
    assert answer["status"] == "SUCCESS", answer
    assert set(answer) == {"status", "number", "activationId"}
    assert type(answer["number"]) is int
    assert type(answer["activationId"]) is int
    assert answer["activationId"] >= 1
    return answer["number"], answer["activationId"]


def drain(client: httpx.Client, service: str = TELEGRAM, **order: Any) -> list[int]:
    numbers: list[int] = []
    while (answer := get_number(client, service, **order))["status"] == "SUCCESS":
        numbers.append(issued(answer)[0])
        assert len(numbers) < 200
    assert answer == {"status": "NO_NUMBERS"}
    return numbers


# --- GET_SERVICES -----------------------------------------------------------------------------


def test_get_services_counts_per_country_operator_and_service(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(
        live_server,
        *russians(2, "beeline"),
        *russians(1, "mts", start=10),
        *russians(1, "", start=20),
        spec("79280000099", enabled=False),
        spec("4915112345678", "germany", "vodafone"),
        spec("4915112345679", "germany", "telekom", rent=False),
    )
    response = post(client, "/onlinesim/getServices", action="GET_SERVICES")
    answer = ok(response)
    assert answer["status"] == "SUCCESS"
    got = availability(client)
    every = set(catalogue.services())
    assert set(got) == {"russia", "germany"}
    assert set(got["russia"]) == {"any", "beeline", "mts"}
    assert set(got["germany"]) == {"any", "vodafone", "telekom"}
    for operator_map in got.values():
        for counts in operator_map.values():
            assert set(counts) == every  # every offered service, explicit zeros included; no rent
            assert all(type(n) is int for n in counts.values())
    assert got["russia"]["beeline"][TELEGRAM] == 2
    assert got["russia"]["mts"][TELEGRAM] == 1
    assert got["russia"]["any"][TELEGRAM] == 4  # beeline + mts + the one with no operator
    assert got["germany"]["any"][VK] == 2
    assert got["germany"]["vodafone"][VK] == 1


def test_get_services_with_no_numbers_is_an_empty_list(client: httpx.Client) -> None:
    assert ok(post(client, "/onlinesim/getServices", action="GET_SERVICES")) == {
        "status": "SUCCESS",
        "countryList": [],
    }


def test_get_services_rent_adds_the_rent_key(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, *russians(3, "beeline"), *russians(2, "mts", start=10, rent=False))
    seed(live_server, *russians(1, "", start=20))
    got = availability(client, "/onlinesim/getServicesRent")
    assert got["russia"]["beeline"]["rent"] == 3
    assert got["russia"]["mts"]["rent"] == 0
    assert got["russia"]["any"]["rent"] == 4
    assert got["russia"]["any"][TELEGRAM] == 6
    assert (
        got["russia"]["any"]["rent"]
        == sum(counts["rent"] for op, counts in got["russia"].items() if op != "any") + 1
    )  # + the number with no operator, counted under any only


def test_the_single_url_answers_services_and_rent(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, *russians(2, "beeline", rent=False), *russians(1, "mts", start=5))
    got = availability(client, "/onlinesim")
    assert got["russia"]["any"][TELEGRAM] == 3
    assert got["russia"]["any"]["rent"] == 1
    assert got["russia"]["beeline"]["rent"] == 0


def test_counts_before_and_after_issue(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, *russians(3, "mts", rent=True))
    before = availability(client, "/onlinesim/getServicesRent")["russia"]
    assert before["mts"][TELEGRAM] == before["mts"][VK] == before["mts"]["rent"] == 3
    issued(get_number(client, TELEGRAM, operator="mts"))
    after = availability(client, "/onlinesim/getServicesRent")["russia"]
    # A busy number is not available for anything: every service and rent drop by one.
    assert after["mts"] == {service: n - 1 for service, n in before["mts"].items()}
    assert after["any"] == after["mts"]
    issued(get_rent(client))
    assert availability(client, "/onlinesim/getServicesRent")["russia"]["any"]["rent"] == 1


# --- GET_NUMBER -------------------------------------------------------------------------------


def test_get_number_answers_integers(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567"))
    response = post(
        client,
        "/onlinesim/getNumber",
        action="GET_NUMBER",
        country="russia",
        operator="any",
        service=TELEGRAM,
        sum=40,
    )
    answer = ok(response)
    number, activation_id = issued(answer)
    assert number == 79281234567
    assert re.search(r'"number":79281234567\b', response.text)
    assert re.search(r'"activationId":\d+\b', response.text)
    operation = snapshot(live_server)[1][0]
    assert (operation.id, operation.phone, operation.service, operation.offered) == (
        activation_id,
        "79281234567",
        TELEGRAM,
        4000,
    )


def test_get_number_honours_country_and_operator(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567", operator="mts"), spec("4915112345678", "germany", "vodafone"))
    assert get_number(client, operator="beeline") == {"status": "NO_NUMBERS"}
    assert get_number(client, country="sweden") == {"status": "NO_NUMBERS"}
    assert issued(get_number(client, operator="MTS"))[0] == 79281234567
    assert issued(get_number(client, country="Germany", operator="any"))[0] == 4915112345678
    assert get_number(client, country="germany") == {"status": "NO_NUMBERS"}


def test_a_service_outside_the_catalogue_has_no_numbers(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(live_server, spec("79281234567"))
    before = snapshot(live_server)
    assert get_number(client, "myspace") == {"status": "NO_NUMBERS"}
    assert snapshot(live_server) == before


def test_activation_ids_are_unique_and_increasing(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, *russians(4))
    ids = [issued(get_number(client, service))[1] for service in (TELEGRAM, VK, WHATSAPP, TELEGRAM)]
    assert ids == sorted(set(ids))
    assert min(ids) >= 1


@pytest.mark.parametrize(
    "exceptions",
    [
        [79281, 7929],
        ["79281", "7929"],
        ["+79281", " 7929 "],
        [79281, "7929"],
    ],
    ids=["numbers", "strings", "plus-and-spaces", "mixed"],
)
def test_exception_phone_set_as_numbers_or_strings(
    live_server: LiveServer, client: httpx.Client, exceptions: list[int | str]
) -> None:
    seed(live_server, spec("79281234567"), spec("79291234567"), spec("79181234567"), spec("79283100000"))
    numbers = drain(client, exceptionPhoneSet=exceptions)
    assert sorted(numbers) == [79181234567, 79283100000]


def test_spec_exception_examples_over_http(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79181234567"), spec("79281234567"), spec("79291234567"), spec("79283100000"))
    assert drain(client, exceptionPhoneSet=["7918", "79281", 792831]) == [79291234567]


def test_exceptions_covering_every_candidate_answer_no_numbers(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(live_server, *russians(3))
    before = snapshot(live_server)
    assert get_number(client, exceptionPhoneSet=[7]) == {"status": "NO_NUMBERS"}
    assert get_number(client, exceptionPhoneSet=["7928"]) == {"status": "NO_NUMBERS"}
    assert get_rent(client, exceptionPhoneSet=[79]) == {"status": "NO_NUMBERS"}
    assert snapshot(live_server) == before
    assert issued(get_number(client, exceptionPhoneSet=[]))[0] // 10**7 == 7928


def test_a_long_exception_list_is_honoured(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567"), spec("79291234567"))
    exceptions: list[int | str] = [100_000 + i for i in range(1_200)]
    assert drain(client, exceptionPhoneSet=[*exceptions, "7929"]) == [79281234567]


# --- FINISH_ACTIVATION ------------------------------------------------------------------------


def test_finish_3_sells_the_number_for_that_service_for_good(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(live_server, spec("79281234567"))
    _, first = issued(get_number(client, TELEGRAM))
    assert finish(client, first, 4) == {"status": "SUCCESS"}
    assert availability(client)["russia"]["any"][TELEGRAM] == 1  # cancelled: count unchanged
    number, second = issued(get_number(client, TELEGRAM))
    assert number == 79281234567
    assert second > first
    assert finish(client, second, 3) == {"status": "SUCCESS"}
    counts = availability(client)["russia"]["any"]
    assert counts[TELEGRAM] == 0
    assert counts[VK] == 1
    assert get_number(client, TELEGRAM) == {"status": "NO_NUMBERS"}
    assert issued(get_number(client, VK))[0] == 79281234567


@pytest.mark.parametrize("status", [1, 4, 5, 2])
def test_other_statuses_release_without_a_sale(
    live_server: LiveServer, client: httpx.Client, status: int
) -> None:
    seed(live_server, spec("79281234567"))
    _, activation_id = issued(get_number(client, TELEGRAM))
    assert availability(client)["russia"]["any"][TELEGRAM] == 0
    assert finish(client, activation_id, status) == {"status": "SUCCESS"}
    assert availability(client)["russia"]["any"][TELEGRAM] == 1
    assert issued(get_number(client, TELEGRAM))[0] == 79281234567
    closed = next(o for o in snapshot(live_server)[1] if o.id == activation_id)
    assert (closed.finish_status, closed.final) == (status, 450)


def test_a_repeated_finish_answers_success_and_changes_nothing(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(live_server, spec("79281234567"), spec("79281234568"))
    _, cancelled = issued(get_number(client, TELEGRAM))
    _, sold = issued(get_number(client, TELEGRAM))
    assert finish(client, cancelled, 4) == {"status": "SUCCESS"}
    assert finish(client, sold, 3) == {"status": "SUCCESS"}
    before = snapshot(live_server)
    counts = availability(client)
    for activation_id, status in [(cancelled, 4), (cancelled, 3), (sold, 3), (sold, 4), (sold, 1)]:
        assert finish(client, activation_id, status) == {"status": "SUCCESS"}
    assert snapshot(live_server) == before
    assert availability(client) == counts
    assert counts["russia"]["any"][TELEGRAM] == 1


def test_finish_of_an_unknown_id_is_an_error(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567"))
    issued(get_number(client))
    before = snapshot(live_server)
    response = post(
        client, "/onlinesim/finishActivation", action="FINISH_ACTIVATION", activationId=987654, status=3
    )
    assert "987654" in refused(response)
    response = post(
        client, "/onlinesim/finishActivationRent", action="FINISH_ACTIVATION", activationId=987654, status=4
    )
    refused(response)
    assert snapshot(live_server) == before


# --- rent -------------------------------------------------------------------------------------


def test_rent_only_from_rentable_numbers(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567", rent=False), spec("79281234568", rent=True))
    number, _ = issued(get_rent(client))
    assert number == 79281234568
    assert get_rent(client) == {"status": "NO_NUMBERS"}
    assert issued(get_number(client))[0] == 79281234567  # activations may use it


def test_a_rented_number_is_not_issued_for_activation_and_vice_versa(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(live_server, spec("79281234567"), spec("79281234568"))
    rented, rent_id = issued(get_rent(client))
    activated, activation_id = issued(get_number(client, TELEGRAM))
    assert rented != activated
    assert get_number(client, VK) == {"status": "NO_NUMBERS"}
    assert get_rent(client) == {"status": "NO_NUMBERS"}
    assert finish(client, rent_id, 3, rent=True) == {"status": "SUCCESS"}
    assert issued(get_number(client, VK))[0] == rented
    assert finish(client, activation_id, 4) == {"status": "SUCCESS"}
    assert issued(get_rent(client))[0] == activated


def test_rent_ignores_services_the_number_was_sold_for(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567"))
    _, sold = issued(get_number(client, TELEGRAM))
    finish(client, sold, 3)
    rented = availability(client, "/onlinesim/getServicesRent")["russia"]["any"]
    assert (rented[TELEGRAM], rented["rent"]) == (0, 1)
    number, rent_id = issued(get_rent(client))
    assert number == 79281234567
    assert finish(client, rent_id, 3, rent=True) == {"status": "SUCCESS"}
    assert get_number(client, TELEGRAM) == {"status": "NO_NUMBERS"}  # still sold for telegram
    assert availability(client)["russia"]["any"][VK] == 1


def test_the_single_url_dispatches_rent_on_service(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567", rent=False), spec("79281234568"))
    answer = ok(
        post(
            client, "/onlinesim", action="GET_NUMBER", country="russia", operator="any", service="RENT", sum=9
        )
    )
    number, rent_id = issued(answer)
    assert number == 79281234568
    operation = next(o for o in snapshot(live_server)[1] if o.id == rent_id)
    assert (operation.kind.value, operation.service) == ("rent", None)
    answer = ok(
        post(
            client,
            "/onlinesim",
            action="get_number",
            country="russia",
            operator="any",
            service=TELEGRAM,
            sum=9,
        )
    )
    assert issued(answer)[0] == 79281234567
    finished = ok(
        post(
            client,
            "/onlinesim",
            action="FINISH_ACTIVATION",
            activationId=rent_id,
            status=3,
            service="rent",
            sum=870,
        )
    )
    assert finished == {"status": "SUCCESS"}
    closed = next(o for o in snapshot(live_server)[1] if o.id == rent_id)
    assert (closed.finish_status, closed.final) == (3, 87000)


def test_every_contract_path_answers(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, *russians(2))
    for path in ("/onlinesim/getServices", "/onlinesim/getServicesRent", "/onlinesim"):
        assert ok(post(client, path, action="GET_SERVICES"))["status"] == "SUCCESS"
    _, activation = issued(get_number(client))
    _, rent = issued(get_rent(client))
    assert finish(client, activation, 4) == {"status": "SUCCESS"}
    assert finish(client, rent, 4, rent=True) == {"status": "SUCCESS"}


def test_the_path_decides_when_action_is_omitted(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567"))
    assert ok(post(client, "/onlinesim/getServices"))["status"] == "SUCCESS"
    answer = ok(
        post(client, "/onlinesim/getNumber", country="russia", operator="any", service=TELEGRAM, sum=1)
    )
    _, activation_id = issued(answer)
    assert ok(post(client, "/onlinesim/finishActivation", activationId=activation_id, status=4)) == {
        "status": "SUCCESS"
    }


# --- authentication ---------------------------------------------------------------------------


def test_the_key_may_travel_in_the_body_a_bearer_header_or_apikey(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(live_server, *russians(3))
    order = {"action": "GET_NUMBER", "country": "russia", "operator": "any", "service": TELEGRAM, "sum": 1}
    issued(ok(client.post("/onlinesim/getNumber", json={**order, "key": KEY})))
    issued(ok(client.post("/onlinesim/getNumber", json=order, headers={"Authorization": f"Bearer {KEY}"})))
    issued(ok(client.post("/onlinesim/getNumber", json=order, params={"apikey": KEY})))


def test_a_right_body_key_beside_a_placeholder_bearer_is_accepted(
    live_server: LiveServer, client: httpx.Client
) -> None:
    headers = {"Authorization": "Bearer apiKey"}
    response = client.post(
        "/onlinesim/getServices", json={"action": "GET_SERVICES", "key": KEY}, headers=headers
    )
    assert ok(response)["status"] == "SUCCESS"


CREDENTIALS: list[tuple[str, dict[str, Any], dict[str, str], dict[str, str]]] = [
    ("missing", {}, {}, {}),
    ("wrong body key", {"key": "nope"}, {}, {}),
    ("empty body key", {"key": ""}, {}, {}),
    ("key prefix", {"key": KEY[:-1]}, {}, {}),
    ("key with suffix", {"key": KEY + "x"}, {}, {}),
    ("wrong bearer", {}, {"Authorization": "Bearer nope"}, {}),
    ("basic scheme", {}, {"Authorization": f"Basic {KEY}"}, {}),
    ("bare header", {}, {"Authorization": KEY}, {}),
    ("wrong apikey", {}, {}, {"apikey": "nope"}),
    ("non-ascii key", {"key": "ключ"}, {}, {}),
]


@pytest.mark.parametrize(
    ("body", "headers", "params"), [c[1:] for c in CREDENTIALS], ids=[c[0] for c in CREDENTIALS]
)
@pytest.mark.parametrize("call", ["getServices", "getNumber", "getNumberRent", "finishActivation", "single"])
def test_a_wrong_or_missing_key_is_401_and_changes_nothing(
    shared: Shared, call: str, body: dict[str, Any], headers: dict[str, str], params: dict[str, str]
) -> None:
    live_server, client, open_id = shared.server, shared.client, shared.open_id
    calls: dict[str, dict[str, Any]] = {
        "getServices": {"action": "GET_SERVICES"},
        "getNumber": {
            "action": "GET_NUMBER",
            "country": "russia",
            "operator": "any",
            "service": VK,
            "sum": 1,
        },
        "getNumberRent": {"action": "GET_NUMBER", "country": "russia", "service": "rent", "sum": 1},
        "finishActivation": {"action": "FINISH_ACTIVATION", "activationId": open_id, "status": 3},
        "single": {"action": "GET_NUMBER", "country": "russia", "service": "rent", "sum": 1},
    }
    fields = calls[call]
    path = "/onlinesim" if call == "single" else f"/onlinesim/{call}"
    before = snapshot(live_server)
    response = client.post(path, json={**fields, **body}, headers=headers, params=params)
    refused(response, 401)
    assert "countryList" not in response.text
    assert snapshot(live_server) == before


# --- bad input --------------------------------------------------------------------------------

GOOD_NUMBER = b'"action":"GET_NUMBER","country":"russia","operator":"any","service":"telegram"'
BAD_INPUT: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("malformed json", "/onlinesim/getNumber", b'{"action":"GET_NUMBER",', {}),
    ("not json", "/onlinesim/getServices", b"action=GET_SERVICES&key=" + KEY.encode(), {}),
    ("empty body", "/onlinesim/getServices", b"", {}),
    ("json array", "/onlinesim/getServices", b'["GET_SERVICES"]', {}),
    ("json null", "/onlinesim/getServices", b"null", {}),
    ("sum as string", "/onlinesim/getNumber", b"{" + GOOD_NUMBER + b',"sum":"40","key":"%K"}', {}),
    ("negative sum", "/onlinesim/getNumber", b"{" + GOOD_NUMBER + b',"sum":-1,"key":"%K"}', {}),
    (
        "country as number",
        "/onlinesim/getNumber",
        b'{"action":"GET_NUMBER","country":7,"service":"vkcom","key":"%K"}',
        {},
    ),
    ("service as list", "/onlinesim/getNumber", b'{"country":"russia","service":["vkcom"],"key":"%K"}', {}),
    (
        "prefix as boolean",
        "/onlinesim/getNumber",
        b"{" + GOOD_NUMBER + b',"exceptionPhoneSet":[true],"key":"%K"}',
        {},
    ),
    (
        "prefix not digits",
        "/onlinesim/getNumber",
        b"{" + GOOD_NUMBER + b',"exceptionPhoneSet":["79a"],"key":"%K"}',
        {},
    ),
    (
        "negative prefix",
        "/onlinesim/getNumber",
        b"{" + GOOD_NUMBER + b',"exceptionPhoneSet":[-7],"key":"%K"}',
        {},
    ),
    (
        "float prefix",
        "/onlinesim/getNumber",
        b"{" + GOOD_NUMBER + b',"exceptionPhoneSet":[79.5],"key":"%K"}',
        {},
    ),
    (
        "prefixes not a list",
        "/onlinesim/getNumber",
        b"{" + GOOD_NUMBER + b',"exceptionPhoneSet":"7928","key":"%K"}',
        {},
    ),
    (
        "missing country",
        "/onlinesim/getNumber",
        b'{"action":"GET_NUMBER","service":"vkcom","sum":1,"key":"%K"}',
        {},
    ),
    (
        "missing service",
        "/onlinesim/getNumber",
        b'{"action":"GET_NUMBER","country":"russia","sum":1,"key":"%K"}',
        {},
    ),
    (
        "activationId as string",
        "/onlinesim/finishActivation",
        b'{"activationId":"%I","status":3,"key":"%K"}',
        {},
    ),
    ("activationId zero", "/onlinesim/finishActivation", b'{"activationId":0,"status":3,"key":"%K"}', {}),
    ("activationId float", "/onlinesim/finishActivation", b'{"activationId":%I.5,"status":3,"key":"%K"}', {}),
    ("status as string", "/onlinesim/finishActivation", b'{"activationId":%I,"status":"3","key":"%K"}', {}),
    ("status as boolean", "/onlinesim/finishActivation", b'{"activationId":%I,"status":true,"key":"%K"}', {}),
    (
        "missing activationId",
        "/onlinesim/finishActivation",
        b'{"action":"FINISH_ACTIVATION","status":3,"key":"%K"}',
        {},
    ),
    ("missing status", "/onlinesim/finishActivation", b'{"activationId":%I,"key":"%K"}', {}),
    ("unknown action", "/onlinesim", b'{"action":"GET_BALANCE","key":"%K"}', {}),
    ("missing action", "/onlinesim", b'{"key":"%K"}', {}),
    ("action not matching path", "/onlinesim/getServices", b'{"action":"GET_NUMBER","key":"%K"}', {}),
    (
        "finish at getNumber",
        "/onlinesim/getNumber",
        b'{"action":"FINISH_ACTIVATION","activationId":%I,"status":3,"key":"%K"}',
        {},
    ),
    ("unknown endpoint", "/onlinesim/getNumbers", b"{" + GOOD_NUMBER + b',"sum":1,"key":"%K"}', {}),
    ("non-utf-8", "/onlinesim/getNumber", b"{" + GOOD_NUMBER + b',"sum":1,"port":"\xff\xfe","key":"%K"}', {}),
    (
        "latin-1 text",
        "/onlinesim/getServices",
        '{"action":"GET_SERVICES","x":"é","key":"%K"}'.encode("latin-1"),
        {},
    ),
    ("bad gzip", "/onlinesim/getServices", b"\x1f\x8b not really gzip", {"Content-Encoding": "gzip"}),
    ("brotli", "/onlinesim/getServices", b'{"action":"GET_SERVICES","key":"%K"}', {"Content-Encoding": "br"}),
]


@pytest.mark.parametrize(
    ("path", "raw", "headers"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
def test_bad_input_is_a_4xx_error_and_changes_nothing(
    shared: Shared, path: str, raw: bytes, headers: dict[str, str]
) -> None:
    live_server, client, open_id = shared.server, shared.client, shared.open_id
    body = raw.replace(b"%K", KEY.encode()).replace(b"%I", str(open_id).encode())
    before = snapshot(live_server)
    response = client.post(path, content=body, headers={"Content-Type": "application/json", **headers})
    refused(response)
    assert snapshot(live_server) == before
    assert next(o for o in before[1] if o.id == open_id).is_open


@pytest.mark.parametrize("amount", [1e300, 1e17])
def test_a_sum_too_large_to_store_is_refused_not_a_500(shared: Shared, amount: float) -> None:
    before = snapshot(shared.server)
    response = post(
        shared.client, "/onlinesim/getNumber", action="GET_NUMBER", country="russia", service=VK, sum=amount
    )
    refused(response)
    assert snapshot(shared.server) == before


def test_an_activation_id_too_large_to_store_is_refused_not_a_500(shared: Shared) -> None:
    before = snapshot(shared.server)
    response = post(shared.client, "/onlinesim/finishActivation", activationId=2**63, status=3)
    refused(response)
    assert snapshot(shared.server) == before


def test_a_status_too_large_to_store_is_refused_not_a_500(shared: Shared) -> None:
    before = snapshot(shared.server)
    response = post(shared.client, "/onlinesim/finishActivation", activationId=shared.open_id, status=2**63)
    refused(response)
    assert snapshot(shared.server) == before


def test_a_prefix_longer_than_any_phone_excludes_nothing(shared: Shared) -> None:
    before = snapshot(shared.server)
    answer = get_number(shared.client, VK, exceptionPhoneSet=[2**70, "7" * 40], country="sweden")
    assert answer == {"status": "NO_NUMBERS"}
    assert snapshot(shared.server) == before


def test_an_oversized_body_is_413(shared: Shared) -> None:
    limit = shared.server.settings.max_body_bytes
    padding = "7" * (limit + 10)
    before = snapshot(shared.server)
    body = f'{{"action":"GET_NUMBER","country":"russia","service":"vkcom","key":"{KEY}","pad":"{padding}"}}'
    refused(shared.client.post("/onlinesim/getNumber", content=body.encode()), 413)

    def chunks() -> Iterator[bytes]:
        data = body.encode()
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    refused(shared.client.post("/onlinesim/getNumber", content=chunks()), 413)  # no Content-Length
    assert snapshot(shared.server) == before


def test_a_body_just_under_the_limit_is_served(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, *russians(1))
    prefix = f'{{"action":"GET_NUMBER","country":"russia","service":"vkcom","sum":1,"key":"{KEY}","pad":"'
    padding = "x" * (live_server.settings.max_body_bytes - len(prefix) - 2)
    body = (prefix + padding + '"}').encode()
    assert len(body) == live_server.settings.max_body_bytes
    issued(ok(client.post("/onlinesim/getNumber", content=body)))


def test_a_gzip_request_body_is_accepted(live_server: LiveServer, client: httpx.Client) -> None:
    seed(live_server, spec("79281234567"))
    body = gzip.compress(
        f'{{"action":"GET_NUMBER","country":"russia","operator":"any","service":"vkcom","sum":5,"key":"{KEY}"}}'.encode()
    )
    response = client.post("/onlinesim/getNumber", content=body, headers={"Content-Encoding": "gzip"})
    assert issued(ok(response))[0] == 79281234567


def test_a_gzip_bomb_is_refused(shared: Shared) -> None:
    limit = shared.server.settings.max_body_bytes
    inflated = b'{"action":"GET_SERVICES","key":"' + KEY.encode() + b'","pad":"' + b"0" * (limit * 8) + b'"}'
    bomb = gzip.compress(inflated, compresslevel=9)
    assert len(bomb) < limit // 50
    before = snapshot(shared.server)
    response = shared.client.post(
        "/onlinesim/getServices", content=bomb, headers={"Content-Encoding": "gzip"}
    )
    refused(response, 413)
    assert snapshot(shared.server) == before


def test_answers_are_gzipped_when_the_caller_accepts_gzip(
    live_server: LiveServer, client: httpx.Client
) -> None:
    seed(live_server, *russians(3))
    body = {"action": "GET_SERVICES", "key": KEY}
    zipped = client.post("/onlinesim/getServices", json=body, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["content-type"] == JSON
    plain = client.post("/onlinesim/getServices", json=body, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()
    assert len(zipped.content) == len(plain.content)  # httpx decoded it
    assert int(zipped.headers["content-length"]) < int(plain.headers["content-length"]) // 2


def test_get_instead_of_post_is_405_json(shared: Shared) -> None:
    before = snapshot(shared.server)
    for path in ("/onlinesim/getServices", "/onlinesim/getNumber", "/onlinesim"):
        refused(shared.client.get(path, params={"apikey": KEY}), 405)
    refused(shared.client.put("/onlinesim/getNumber", json={"key": KEY}), 405)
    assert snapshot(shared.server) == before


def test_an_unknown_path_under_onlinesim_is_a_json_404(shared: Shared) -> None:
    refused(shared.client.post("/onlinesim/getServices/extra", json={"key": KEY}), 404)


# --- health and metrics -----------------------------------------------------------------------


def test_healthz_readyz_metrics(live_server: LiveServer, client: httpx.Client) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.headers["content-type"] == JSON
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    ok(post(client, "/onlinesim/getServices", action="GET_SERVICES"))
    refused(client.post("/onlinesim/getServices", json={"key": "nope"}), 401)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert re.search(
        r'simgate_marketplace_requests_total\{[^}]*call="getServices"[^}]*status="SUCCESS"[^}]*\} 1\.0', text
    )
    assert re.search(
        r'simgate_marketplace_requests_total\{[^}]*call="getServices"[^}]*status="ERROR"[^}]*\} 1\.0', text
    )
    assert "simgate_marketplace_request_seconds_bucket" in text


def test_metrics_labels_do_not_grow_with_arbitrary_paths(shared: Shared) -> None:
    for i in range(3):
        refused(shared.client.post(f"/onlinesim/probe-{i}-x", json={"action": "GET_SERVICES"}))
    text = shared.client.get("/metrics").text
    assert "probe-" not in text


# --- concurrency and restart ------------------------------------------------------------------


async def test_sixty_concurrent_orders_for_twenty_five_numbers(live_server: LiveServer) -> None:
    seed(live_server, *russians(25, "mts"), spec("4915112345678", "germany", "vodafone"))
    order = {
        "action": "GET_NUMBER",
        "country": "russia",
        "operator": "any",
        "service": TELEGRAM,
        "sum": 12.5,
        "key": KEY,
    }
    limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30, limits=limits) as http:
        start = asyncio.Event()

        async def one() -> Answer:
            await start.wait()
            response = await http.post("/onlinesim/getNumber", json=order)
            return ok(response)

        tasks = [asyncio.create_task(one()) for _ in range(60)]
        await asyncio.sleep(0.05)
        start.set()
        answers = await asyncio.gather(*tasks)
    successes = [issued(a) for a in answers if a["status"] == "SUCCESS"]
    assert len(successes) == 25
    assert sum(a == {"status": "NO_NUMBERS"} for a in answers) == 35
    assert len({number for number, _ in successes}) == 25
    assert len({activation for _, activation in successes}) == 25
    numbers, operations, _ = snapshot(live_server)
    assert sorted(o.id for o in operations if o.is_open) == sorted(a for _, a in successes)
    held = {int(n.phone): n.open_operation_id for n in numbers if n.busy}
    assert held == {number: activation for number, activation in successes}


def test_restart_keeps_open_operations_history_and_sales(live_server: LiveServer) -> None:
    seed(live_server, *russians(6))
    with live_server.client() as http:
        ops = [issued(get_number(http, TELEGRAM)) for _ in range(4)]
        (sold_number, sold_id), (cancel_number, cancel_id), still_open_a, still_open_b = ops
        assert finish(http, sold_id, 3) == {"status": "SUCCESS"}
        assert finish(http, cancel_id, 4) == {"status": "SUCCESS"}
        before = availability(http)
    assert before["russia"]["any"][TELEGRAM] == 3  # 6 - 2 open - 1 sold
    history = snapshot(live_server)

    live_server.stop()
    live_server.start()

    assert snapshot(live_server) == history
    with live_server.client() as http:
        assert availability(http) == before
        assert finish(http, sold_id, 4) == {"status": "SUCCESS"}  # a resend after the restart
        assert finish(http, cancel_id, 3) == {"status": "SUCCESS"}
        assert snapshot(live_server) == history
        fresh = drain(http, TELEGRAM)
        assert len(fresh) == 3
        assert sold_number not in fresh
        assert {still_open_a[0], still_open_b[0]}.isdisjoint(fresh)
        assert cancel_number in fresh
        assert issued(get_number(http, VK))[0] == sold_number  # sold for telegram only
        operations = snapshot(live_server)[1]
        new_ids = [o.id for o in operations if o.id not in {i for _, i in ops}]
        assert min(new_ids) > max(i for _, i in ops)
        assert finish(http, still_open_a[1], 4) == {"status": "SUCCESS"}
        assert issued(get_number(http, TELEGRAM))[0] == still_open_a[0]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"key": "%s", "sum": "five"}', "malformed request: sum must be a number or null, not text"),
        (b'{"key": "%s", "sum": 5', "malformed request: the body ends early: it is not complete JSON"),
    ],
)
def test_a_malformed_body_is_explained_in_plain_words(shared: Shared, raw: bytes, words: str) -> None:
    response = shared.client.post("/onlinesim/getNumber", content=raw.replace(b"%s", KEY.encode()))
    assert refused(response, 400) == words
