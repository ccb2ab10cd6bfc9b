"""A small farm with a history, made the way production makes one: over HTTP.

The marketplace orders and finishes numbers through /onlinesim, the hardware posts SMS to
/intake/sms; only the push attempts are recorded straight through the store (as the
delivery worker would), so the console tests need no push receiver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from simgate.domain.messages import Attempt, Verdict
from simgate.domain.model import NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.services.inventory import import_numbers
from simgate.storage.ports import UnitOfWork
from tests.conftest import ADMIN_TOKEN, INTAKE_TOKEN, KEY, LiveServer

A, B, C, D = "79280000001", "79280000002", "4915112345678", "79280000004"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Farm:
    ids: dict[str, int]
    """Number ids by phone."""
    sold: int
    """A telegram activation on A: SMS pushed and acknowledged, FINISH status 3, 12.50 RUB."""
    rents: list[int]
    """Three rents on B that got no SMS: B loses money."""
    open_vk: int
    """A vk activation on A, still open; its SMS push was rejected."""
    delivered: int
    rejected: int


def marketplace(client: httpx.Client, endpoint: str, **fields: Any) -> dict[str, Any]:
    path = f"/onlinesim/{endpoint}" if endpoint else "/onlinesim"
    response = client.post(path, json={"key": KEY, **fields})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def sms(client: httpx.Client, phone: str, sender: str, text: str) -> dict[str, Any]:
    response = client.post(
        "/intake/sms",
        json={"phone": phone, "sender": sender, "text": text},
        headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def push(
    server: LiveServer, verdict: Verdict, state: str, status: int, answer: str, reason: str | None
) -> int:
    assert server.store is not None
    now = time.time()

    def work(uow: UnitOfWork) -> int:
        (item,) = uow.outbox.claim_due("test-worker", now, 30.0, 10)
        attempt = Attempt(now, 8.0, status, answer, None, verdict)
        uow.outbox.record(item.id, "test-worker", attempt, state, now + 10, reason)
        return item.id

    return server.store.run(work)


def seed_farm(server: LiveServer) -> Farm:
    specs = [
        NumberSpec(PhoneNumber(A), CountryName("russia"), OperatorName("beeline"), "goip1/1"),
        NumberSpec(PhoneNumber(B), CountryName("russia"), OperatorName("mts"), "goip1/2"),
        NumberSpec(PhoneNumber(C), CountryName("germany"), OperatorName("vodafone"), "goip2/1"),
        NumberSpec(PhoneNumber(D), CountryName("russia"), OperatorName("beeline"), "goip2/2", enabled=False),
    ]
    assert server.store is not None
    server.store.run(lambda uow: import_numbers(uow, specs, time.time()))
    ids = server.store.run(
        lambda uow: {s.phone: n.id for s in specs if (n := uow.numbers.get_by_phone(s.phone)) is not None}
    )
    with server.client() as client:
        got = marketplace(
            client, "getNumber", action="GET_NUMBER", country="russia", operator="beeline",
            service="telegram", sum=10,
        )  # fmt: skip
        assert got["number"] == int(A)
        sold = int(got["activationId"])
        sms(client, A, "Telegram", "Telegram code 11111")
        delivered = push(server, Verdict.DELIVERED, "delivered", 200, '{"status":"SUCCESS"}', None)
        marketplace(
            client, "finishActivation", action="FINISH_ACTIVATION", activationId=sold, status=3, sum=12.5
        )
        rents = []
        for _ in range(3):
            got = marketplace(
                client, "getNumberRent", action="GET_NUMBER", country="russia", operator="mts", sum=50
            )
            assert got["number"] == int(B)
            rents.append(int(got["activationId"]))
            marketplace(
                client, "finishActivationRent", action="FINISH_ACTIVATION", activationId=rents[-1],
                status=4, service="rent", sum=0,
            )  # fmt: skip
        got = marketplace(
            client,
            "getNumber",
            action="GET_NUMBER",
            country="russia",
            operator="beeline",
            service="vkcom",
            sum=8,
        )
        open_vk = int(got["activationId"])
        sms(client, A, "VK", "VK code 22222")
        rejected = push(
            server,
            Verdict.REJECTED,
            "rejected",
            200,
            '{"status":"ERROR","error":"NO_OPERATION"}',
            "NO_OPERATION",
        )
        sms(client, C, "Bank", "stray 33333")
    return Farm(ids, sold, rents, open_vk, delivered, rejected)


def services(client: httpx.Client, country: str = "russia", operator: str = "any") -> dict[str, int]:
    """GET_SERVICES (single URL: service and rent counts) for one operator map."""
    answer = marketplace(client, "", action="GET_SERVICES")
    for entry in answer["countryList"]:
        if entry["country"] == country:
            counts: dict[str, int] = entry["operatorMap"].get(operator, {})
            return counts
    return {}
