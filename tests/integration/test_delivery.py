"""SMS intake to PUSH_SMS over real HTTP: simgate under uvicorn on a SQLite file, pushing to a
fake Onlinesim receiver (issue 3; spec 5.4, 6.4; CONTRACT.md "SMS intake").

Retries run every 0.2 s here (SIMGATE_PUSH_RETRY_SECONDS in tests.conftest.test_settings), so
"no further attempt" is proven by waiting several retry periods.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner, Result

from simgate import __version__, cli
from simgate.delivery.retry import RetryPolicy
from simgate.delivery.sender import WebhookSender
from simgate.delivery.worker import DeliveryWorker
from simgate.domain.messages import Attempt, Delivery, DeliveryState, IncomingMessage, Message, Verdict
from simgate.domain.model import Number
from simgate.domain.read_model import MessageQuery
from simgate.marketplaces.onlinesim import MARKETPLACE
from simgate.marketplaces.onlinesim.push import OnlinesimPush
from simgate.services.intake import accept_sms
from simgate.services.operations import issue_number
from simgate.storage.ports import Store, UnitOfWork
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import INTAKE_TOKEN, KEY, LiveServer
from tests.conftest import test_settings as settings_for
from tests.factories import make_order, make_spec
from tests.fakes import FakeReceiver

T = TypeVar("T")
RETRY = 0.2
"""SIMGATE_PUSH_RETRY_SECONDS in tests.conftest.test_settings."""
QUIET = 6 * RETRY
"""Long enough for several more attempts, had any been due."""
SIMGATE = Path(sys.executable).with_name("simgate")


# --- fixtures and helpers --------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def server(sqlite_url: str, receiver: FakeReceiver) -> Iterator[LiveServer]:
    live = LiveServer(settings_for(sqlite_url, onlinesim_push_url=receiver.url)).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def run(server: LiveServer, work: Callable[[UnitOfWork], T]) -> T:
    assert server.store is not None
    return server.store.run(work)


def add_numbers(server: LiveServer, count: int = 1, **overrides: Any) -> list[Number]:
    specs = [make_spec(**overrides) for _ in range(count)]

    def work(uow: UnitOfWork) -> list[Number]:
        found = []
        for spec in specs:
            uow.numbers.upsert(spec, time.time())
            number = uow.numbers.get_by_phone(spec.phone)
            assert number is not None
            found.append(number)
        return found

    return run(server, work)


@dataclass(frozen=True)
class Issued:
    phone: str
    activation_id: int


def get_number(client: httpx.Client, *, rent: bool = False) -> Issued:
    """GET_NUMBER as Onlinesim sends it: the number is then busy in an open operation."""
    path = "/onlinesim/getNumberRent" if rent else "/onlinesim/getNumber"
    body: dict[str, Any] = {"action": "GET_NUMBER", "country": "russia", "operator": "any", "sum": 12.5}
    body |= {"service": "rent"} if rent else {"service": "telegram"}
    answer = client.post(path, json={**body, "key": KEY})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["status"] == "SUCCESS", data
    return Issued(str(data["number"]), int(data["activationId"]))


def post_sms(
    client: httpx.Client,
    phone: str,
    text: str = "VK: 33708",
    *,
    sender: str = "VK",
    message_id: str | None = None,
    token: str | None = INTAKE_TOKEN,
) -> httpx.Response:
    body: dict[str, Any] = {"phone": phone, "sender": sender, "text": text}
    if message_id is not None:
        body["message_id"] = message_id
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.post("/intake/sms", json=body, headers=headers)


def all_messages(server: LiveServer, **where: Any) -> list[tuple[Message, Delivery | None]]:
    return run(server, lambda uow: uow.messages.search(MessageQuery(limit=10_000, **where)))


def delivery_for(server: LiveServer, message_id: int) -> Delivery:
    (delivery,) = [d for m, d in all_messages(server) if m.id == message_id]
    assert delivery is not None
    return delivery


def attempts_of(server: LiveServer, delivery_id: int) -> list[Attempt]:
    return run(server, lambda uow: uow.outbox.attempts(delivery_id))


def wait_until(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def wait_for_state(server: LiveServer, message_id: int, state: DeliveryState) -> Delivery:
    def reached() -> Delivery | None:
        delivery = delivery_for(server, message_id)
        return delivery if delivery.state is state else None

    found = wait_until(reached, what=f"delivery of message {message_id} to become {state.value}")
    assert found is not None
    return found


def accepted(answer: httpx.Response) -> int:
    assert answer.status_code == 202, answer.text
    data = answer.json()
    assert data["duplicate"] is False
    return int(data["id"])


# --- retries and verdicts --------------------------------------------------------------


def test_500_500_200_is_three_attempts_then_none(
    server: LiveServer, client: httpx.Client, receiver: FakeReceiver
) -> None:
    receiver.set_script(
        [(500, {"status": "ERROR"}), (500, "Internal Server Error"), (200, {"status": "SUCCESS"})]
    )
    add_numbers(server)
    issued = get_number(client)
    message_id = accepted(post_sms(client, issued.phone, "Telegram code 55213"))

    pushes = receiver.wait_for(3, timeout=10)
    delivered = wait_for_state(server, message_id, DeliveryState.DELIVERED)
    time.sleep(QUIET)
    assert len(receiver.requests) == 3, "an acknowledged SMS was pushed again"

    # The same payload each time, each retry one retry period after the last answer.
    assert len({p.raw for p in pushes}) == 1
    for before, after in itertools.pairwise(pushes):
        assert before.answered_at is not None
        assert after.at - before.answered_at >= RETRY * 0.9
    assert [p.status for p in receiver.requests] == [500, 500, 200]

    assert delivered.attempts == 3
    assert delivered.finished_at is not None
    assert delivered.reason is None
    tries = attempts_of(server, delivered.id)
    assert [(a.http_status, a.verdict) for a in tries] == [
        (500, Verdict.RETRY),
        (500, Verdict.RETRY),
        (200, Verdict.DELIVERED),
    ]
    assert tries[1].response == "Internal Server Error"
    assert json.loads(tries[2].response or "") == {"status": "SUCCESS"}
    assert all(a.latency_ms >= 0 and a.error is None for a in tries)
    assert tries[0].started_at < tries[1].started_at < tries[2].started_at


def test_no_operation_is_one_attempt_and_a_rejection(
    server: LiveServer, client: httpx.Client, receiver: FakeReceiver
) -> None:
    receiver.set_script([(404, {"status": "NO_OPERATION"})])
    add_numbers(server)
    issued = get_number(client)
    message_id = accepted(post_sms(client, issued.phone))

    receiver.wait_for(1, timeout=10)
    rejected = wait_for_state(server, message_id, DeliveryState.REJECTED)
    time.sleep(QUIET)
    assert len(receiver.requests) == 1
    assert rejected.reason == "NO_OPERATION"
    assert rejected.attempts == 1
    ((row, delivery),) = all_messages(server, delivery_state="failed")
    assert row.id == message_id
    assert delivery == rejected
    (only,) = attempts_of(server, rejected.id)
    assert (only.http_status, only.verdict) == (404, Verdict.REJECTED)


def test_a_refused_connection_is_retried_until_the_receiver_is_back(
    sqlite_url: str, receiver: FakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    port = receiver.port
    receiver.stop()
    live = LiveServer(settings_for(sqlite_url, onlinesim_push_url=f"http://127.0.0.1:{port}")).start()
    try:
        with live.client() as client:
            add_numbers(live)
            issued = get_number(client)
            message_id = accepted(post_sms(client, issued.phone))
            wait_until(lambda: delivery_for(live, message_id).attempts >= 2, what="two failed attempts")
            failed = attempts_of(live, delivery_for(live, message_id).id)
            assert all(a.http_status is None and a.error and a.verdict is Verdict.RETRY for a in failed)
            # Each failed push: one WARNING line naming the error once.
            pushes = [r for r in caplog.records if r.getMessage().startswith("push delivery=")]
            assert pushes
            assert all(r.levelname == "WARNING" for r in pushes)
            error = failed[0].error
            assert error is not None
            line = pushes[0].getMessage()
            assert "status=no answer outcome=pending" in line
            assert line.count(error) == 1, line

            back = FakeReceiver(port=port).start()
            try:
                back.wait_for(1, timeout=10)
                wait_for_state(live, message_id, DeliveryState.DELIVERED)
                time.sleep(QUIET)
                assert len(back.requests) == 1
            finally:
                back.stop()
    finally:
        live.stop()


# --- the payload -----------------------------------------------------------------------


def test_activation_and_rent_pushes_go_to_their_paths(
    server: LiveServer, client: httpx.Client, receiver: FakeReceiver
) -> None:
    add_numbers(server, 2)
    activation = get_number(client)
    rent = get_number(client, rent=True)
    accepted(post_sms(client, activation.phone, "activation sms", sender="Telegram"))
    receiver.wait_for(1, timeout=10)
    accepted(post_sms(client, rent.phone, "rent sms", sender="+79001112233"))
    first, second = receiver.wait_for(2, timeout=10)

    assert first.path == "/v1/PUSH_SMS"
    assert first.body == {
        "action": "PUSH_SMS",
        "key": KEY,
        "smsId": activation.activation_id,
        "phone": activation.phone,
        "phoneFrom": "Telegram",
        "text": "activation sms",
    }
    assert second.path == "/v1/PUSH_SMS_RENT"
    assert second.body == {
        "action": "PUSH_SMS",
        "key": KEY,
        "service": "rent",
        "smsId": rent.activation_id,
        "phone": rent.phone,
        "phoneFrom": "+79001112233",
        "text": "rent sms",
    }
    for push in (first, second):
        assert push.header("Content-Type") == "application/json; charset=utf-8"
        assert push.header("Authorization") == f"Bearer {KEY}"
        assert push.header("User-Agent") == f"simgate/{__version__}"


TEXTS = [
    "Ваш код подтверждения: 4821. Никому не сообщайте его!",  # noqa: RUF001
    "🔐 Code 123-456 ✅ 👍🏽 家族 👨‍👩‍👧",
    "".join(chr(0x410 + i % 64) if i % 3 else "😀" for i in range(3000)),
    '  leading and trailing spaces, "quotes", back\\slash,\nnew line\ttab  ',
]


def test_text_reaches_the_marketplace_exactly(
    server: LiveServer, client: httpx.Client, receiver: FakeReceiver
) -> None:
    add_numbers(server)
    rent = get_number(client, rent=True)
    ids = [accepted(post_sms(client, rent.phone, text, sender="Сбер")) for text in TEXTS]  # noqa: RUF001

    pushes = receiver.wait_for(len(TEXTS), timeout=10)
    assert sorted(p.body["text"] for p in pushes) == sorted(TEXTS)
    assert all(p.body["phoneFrom"] == "Сбер" for p in pushes)  # noqa: RUF001
    assert all(p.raw.decode("utf-8") for p in pushes)
    # Several SMS in one rent are several pushes, all for that operation.
    assert {p.body["smsId"] for p in pushes} == {rent.activation_id}
    stored = {m.id: m.text for m, _ in all_messages(server)}
    assert [stored[i] for i in ids] == TEXTS
    assert len(TEXTS[2]) == 3000


# --- intake ----------------------------------------------------------------------------


def test_intake_answers_with_the_stored_message(
    server: LiveServer, client: httpx.Client, receiver: FakeReceiver
) -> None:
    add_numbers(server)
    issued = get_number(client)
    answer = post_sms(client, "+" + issued.phone, message_id="port7-000123")
    assert answer.status_code == 202
    assert answer.headers["content-type"].startswith("application/json")
    data = answer.json()
    assert set(data) == {"id", "operation_id", "duplicate"}
    assert data["operation_id"] == issued.activation_id
    assert data["duplicate"] is False
    (stored,) = all_messages(server)
    assert stored[0].id == data["id"]
    assert stored[0].message_key == "port7-000123"

    again = post_sms(client, issued.phone, message_id="port7-000123")
    assert again.status_code == 200
    assert again.json() == {"id": data["id"], "operation_id": issued.activation_id, "duplicate": True}


def test_an_sms_without_an_operation_is_kept_and_not_pushed(
    server: LiveServer, client: httpx.Client, receiver: FakeReceiver
) -> None:
    (number,) = add_numbers(server)
    answer = post_sms(client, number.phone, "nobody ordered this")
    assert answer.status_code == 202
    assert answer.json()["operation_id"] is None
    time.sleep(QUIET)
    assert receiver.requests == []
    ((message, delivery),) = all_messages(server, routed=False)
    assert message.text == "nobody ordered this"
    assert delivery is None


def raw_post(client: httpx.Client, body: bytes, token: str | None = INTAKE_TOKEN) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}".strip()
    return client.post("/intake/sms", content=body, headers=headers)


def good(phone: str, **changes: Any) -> bytes:
    body = {"phone": phone, "sender": "VK", "text": "VK: 33708", "message_id": "m1"} | changes
    return json.dumps({k: v for k, v in body.items() if v is not None}, ensure_ascii=False).encode()


BAD_INPUT: dict[str, tuple[Callable[[str], bytes], str | None, int]] = {
    "bad JSON": (lambda phone: b'{"phone": "' + phone.encode() + b'", "text": ', INTAKE_TOKEN, 400),
    "not an object": (lambda phone: b"[1, 2]", INTAKE_TOKEN, 400),
    "empty body": (lambda phone: b"", INTAKE_TOKEN, 400),
    "missing text": (lambda phone: good(phone, text=None), INTAKE_TOKEN, 400),
    "empty text": (lambda phone: good(phone, text=""), INTAKE_TOKEN, 400),
    "text not a string": (lambda phone: good(phone, text=12345), INTAKE_TOKEN, 400),
    "empty sender": (lambda phone: good(phone, sender=""), INTAKE_TOKEN, 400),
    "text too long": (lambda phone: good(phone, text="x" * 40_001), INTAKE_TOKEN, 400),
    "bad received_at": (lambda phone: good(phone, received_at="yesterday"), INTAKE_TOKEN, 400),
    "unknown phone": (lambda phone: good("79990000001"), INTAKE_TOKEN, 422),
    "not a phone": (lambda phone: good("call me"), INTAKE_TOKEN, 400),
    "oversized body": (lambda phone: good(phone, text="x" * 1_100_000), INTAKE_TOKEN, 413),
    "non-UTF-8": (
        lambda phone: b'{"phone": "' + phone.encode() + b'", "sender": "VK", "text": "\xff\xfe code"}',
        INTAKE_TOKEN,
        400,
    ),
    "Latin-1 Cyrillic": (
        lambda phone: good(phone).replace(b"VK: 33708", "код".encode("cp1251")),
        INTAKE_TOKEN,
        400,
    ),
    "wrong token": (lambda phone: good(phone), "not-the-token", 401),
    "missing token": (lambda phone: good(phone), None, 401),
    "bearer without a token": (lambda phone: good(phone), "", 401),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_intake_is_a_4xx_with_an_error_and_stores_nothing(
    server: LiveServer, client: httpx.Client, receiver: FakeReceiver, case: str
) -> None:
    add_numbers(server)
    issued = get_number(client)
    build, token, status = BAD_INPUT[case]
    answer = raw_post(client, build(issued.phone), token)
    assert answer.status_code == status, answer.text
    data = answer.json()
    assert set(data) == {"error"}
    assert isinstance(data["error"], str)
    assert data["error"]
    assert all_messages(server) == []
    assert server.store is not None
    assert server.store.run_report(lambda r: r.outbox()).pending == 0
    # The hardware may now send it properly, and that one is new: nothing was half-stored.
    assert post_sms(client, issued.phone, message_id="m1").status_code == 202
    receiver.wait_for(1, timeout=10)


def test_basic_auth_is_not_the_intake_token(server: LiveServer, client: httpx.Client) -> None:
    (number,) = add_numbers(server)
    answer = client.post(
        "/intake/sms",
        content=good(number.phone),
        headers={"Authorization": f"Basic {INTAKE_TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 401
    assert all_messages(server) == []


def test_one_message_id_posted_20_times_at_once_is_one_message_and_one_push(
    server: LiveServer, receiver: FakeReceiver
) -> None:
    with server.client() as setup:
        add_numbers(server)
        issued = get_number(setup)
    start = threading.Barrier(20)

    def post(_: int) -> httpx.Response:
        with server.client() as own:
            start.wait(timeout=10)
            return post_sms(own, issued.phone, "code 777", message_id="goip-42")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {202: 1, 200: 19}, statuses
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.json()["duplicate"] for a in answers) == 19
    assert len(all_messages(server)) == 1
    receiver.wait_for(1, timeout=10)
    time.sleep(QUIET)
    assert len(receiver.requests) == 1


# --- the operator's commands -----------------------------------------------------------


def simgate_process(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `simgate` command in its own process (about 2 s to start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMGATE_")}
    env["SIMGATE_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(SIMGATE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def simgate(database_url: str, *args: str) -> Result:
    """The same command in this process: the same code path, without the start-up cost."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SIMGATE_")}
    env["SIMGATE_DATABASE_URL"] = database_url
    return CliRunner().invoke(cli.app, list(args), env=env)


def sms_list(database_url: str, *flags: str) -> list[dict[str, Any]]:
    done = simgate(database_url, "sms", "list", "--json", *flags)
    assert done.exit_code == 0, done.stderr
    records: list[dict[str, Any]] = json.loads(done.stdout)
    return records


def test_sms_list_and_outbox_retry(
    sqlite_url: str, server: LiveServer, client: httpx.Client, receiver: FakeReceiver
) -> None:
    add_numbers(server, 4)
    ok, refused, failing = (get_number(client) for _ in range(3))
    (idle,) = [n for n in run(server, lambda uow: uow.numbers.search()) if not n.busy]

    delivered_id = accepted(post_sms(client, ok.phone, "acknowledged"))
    wait_for_state(server, delivered_id, DeliveryState.DELIVERED)
    receiver.set_script([], default=(404, {"response": "NO_OPERATION"}))
    rejected_id = accepted(post_sms(client, refused.phone, "refused"))
    wait_for_state(server, rejected_id, DeliveryState.REJECTED)
    receiver.set_script([], default=(503, "busy"))
    pending_id = accepted(post_sms(client, failing.phone, "still trying"))
    wait_until(lambda: delivery_for(server, pending_id).attempts >= 1, what="a failed attempt")
    unrouted_id = accepted(post_sms(client, idle.phone, "for nobody"))

    everything = sms_list(sqlite_url)
    by_id = {r["id"]: r for r in everything}
    assert [r["id"] for r in everything] == [unrouted_id, pending_id, rejected_id, delivered_id]
    assert by_id[delivered_id]["push"] == "delivered"
    assert by_id[delivered_id]["text"] == "acknowledged"
    assert by_id[delivered_id]["operation_id"] == ok.activation_id
    assert by_id[rejected_id]["push"] == "rejected"
    assert by_id[rejected_id]["reason"] == "NO_OPERATION"
    assert by_id[pending_id]["push"] == "pending"
    assert by_id[pending_id]["attempts"] >= 1
    assert by_id[unrouted_id]["push"] == "unrouted"
    assert by_id[unrouted_id]["delivery_id"] is None

    assert [r["id"] for r in sms_list(sqlite_url, "--unrouted")] == [unrouted_id]
    assert [r["id"] for r in sms_list(sqlite_url, "--pending")] == [pending_id]
    assert [r["id"] for r in sms_list(sqlite_url, "--failed")] == [rejected_id]
    assert len(sms_list(sqlite_url, "--limit", "2")) == 2
    both = simgate(sqlite_url, "sms", "list", "--pending", "--failed")
    assert both.exit_code != 0
    assert both.stderr.strip()

    receiver.set_script([], default=(200, {"status": "SUCCESS"}))
    pushes_before = len(receiver.requests)
    acknowledged = by_id[delivered_id]["delivery_id"]
    refused_retry = simgate_process(sqlite_url, "outbox", "retry", str(acknowledged))
    assert refused_retry.returncode != 0
    assert "delivered" in refused_retry.stderr
    database_line, reason = refused_retry.stderr.strip().splitlines()
    assert database_line.startswith("database: ")
    assert reason.startswith("simgate: push ")
    assert simgate(sqlite_url, "outbox", "retry", str(acknowledged)).exit_code != 0
    assert delivery_for(server, delivered_id).state is DeliveryState.DELIVERED
    unknown = simgate(sqlite_url, "outbox", "retry", "987654")
    assert unknown.exit_code != 0

    # The id `outbox retry` takes is the one the table shows first, and the answer names the SMS.
    table = simgate(sqlite_url, "sms", "list", "--failed")
    row = next(line for line in table.stdout.splitlines() if line.startswith("│"))
    first_cell = row.split()[1]
    assert first_cell == str(by_id[rejected_id]["delivery_id"]), table.stdout
    requeued = simgate(sqlite_url, "outbox", "retry", str(by_id[rejected_id]["delivery_id"]))
    assert requeued.exit_code == 0, requeued.stderr
    assert f"SMS {rejected_id} from " in requeued.stdout
    assert "'refused'" in requeued.stdout
    wait_for_state(server, rejected_id, DeliveryState.DELIVERED)
    wait_for_state(server, pending_id, DeliveryState.DELIVERED)
    time.sleep(QUIET)
    texts = Counter(p.body["text"] for p in receiver.requests[pushes_before:])
    assert texts == {"refused": 1, "still trying": 1}, "only the re-queued and the pending SMS go out"


# --- graceful stop of a worker (in process) --------------------------------------------


class HeldClaims:
    """A store whose first unit of work (the worker's first claim) commits, then answers late.

    Stands for a busy writer thread: SIGTERM arrives while a claim is on its way back.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.claimed = asyncio.Event()
        self.gate = asyncio.Event()
        self.calls = 0

    async def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        self.calls += 1
        first = self.calls == 1
        result = await self.inner.transact(work)
        if first:
            self.claimed.set()
            await self.gate.wait()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_stopping_while_a_claim_is_in_flight_pushes_nothing_twice(
    sqlite_url: str, receiver: FakeReceiver
) -> None:
    """SIGTERM lands while the worker's claim is on its way back from the writer thread.

    stop() sees nothing in flight and releases the claims; the loop then gets its batch and
    pushes rows it no longer holds, while a second worker has already taken and pushed them.
    A correct stop either waits for the loop (and finishes that batch) or releases it unsent.
    """
    receiver.delay = 0.05
    store = SQLiteStore.from_url(sqlite_url)
    try:
        await _race_stop_against_claim(store, receiver)
    finally:
        store.close()


async def _race_stop_against_claim(store: SQLiteStore, receiver: FakeReceiver) -> None:
    now = time.time()
    specs = [make_spec() for _ in range(3)]

    def seed(uow: UnitOfWork) -> None:
        for spec in specs:
            uow.numbers.upsert(spec, now - 10)
        for spec in specs:
            operation = issue_number(uow, MARKETPLACE, make_order(), now - 5)
            assert operation is not None
        for spec in specs:
            accept_sms(uow, IncomingMessage(spec.phone, "VK", f"text of {spec.phone}"), now)

    store.run(seed)
    push = OnlinesimPush(receiver.url, KEY)
    held = HeldClaims(store)

    def worker(name: str, on: Store) -> DeliveryWorker:
        return DeliveryWorker(
            on, {MARKETPLACE: push}, sender, RetryPolicy(delay=RETRY), time.time,
            name=name, registry=CollectorRegistry(), poll_interval=0.05,
        )  # fmt: skip

    async with WebhookSender(timeout=2.0) as sender:
        first, second = worker("first", held), worker("second", store)
        run_first = asyncio.create_task(first.run())
        await asyncio.wait_for(held.claimed.wait(), 5)
        stop_first = asyncio.create_task(first.stop(grace=5))
        await asyncio.wait({stop_first}, timeout=1)
        run_second = asyncio.create_task(second.run())
        await asyncio.sleep(0.5)
        held.gate.set()
        await asyncio.wait_for(stop_first, 10)
        await asyncio.wait_for(run_first, 10)
        # Every SMS pushed before the second worker stops (a stop may release what it has not
        # sent yet), however slow a loaded machine; then a while for a second copy to show.
        expected = {f"text of {s.phone}" for s in specs}
        for _ in range(400):  # 20 s
            if {r.body["text"] for r in receiver.requests} >= expected:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await second.stop(grace=5)
        await asyncio.wait_for(run_second, 10)

    texts = Counter(r.body["text"] for r in receiver.requests)
    assert set(texts) == {f"text of {s.phone}" for s in specs}
    assert max(texts.values()) == 1, f"pushed more than once: {texts}"
