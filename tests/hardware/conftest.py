"""Helpers for the hardware drivers: a live app with [hardware.*] tables, seeded SIMs, probes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from simgate.config import Settings, load_settings
from simgate.domain.messages import Delivery, Message
from simgate.domain.read_model import MessageQuery
from simgate.domain.types import OperationId, PhoneNumber
from simgate.services.inventory import import_numbers
from simgate.services.sink import StoreSink
from simgate.storage.ports import Store
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import ADMIN_TOKEN, INTAKE_TOKEN, KEY, LiveServer, copy_database
from tests.factories import make_order, make_spec

PHONES = [PhoneNumber(f"7928123456{i}") for i in range(8)]


def hardware_settings(database_url: str, config: Path, toml: str, **env: str) -> Settings:
    config.write_text(toml)
    environ = {
        "SIMGATE_DATABASE_URL": database_url,
        "SIMGATE_ONLINESIM_KEY": KEY,
        "SIMGATE_INTAKE_TOKEN": INTAKE_TOKEN,
        "SIMGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "SIMGATE_PUSH_RETRY_SECONDS": "0.2",
        **{f"SIMGATE_{k.upper()}": v for k, v in env.items()},
    }
    return load_settings(environ, config_file=config)


def sink(store: Store) -> StoreSink:
    """What bootstrap hands the drivers, without a delivery worker to wake."""
    return StoreSink(store, time.time, lambda: None)


def seed(store: Store, *phones: PhoneNumber) -> None:
    specs = [make_spec(phone=phone) for phone in phones]
    store.run(lambda uow: import_numbers(uow, specs, time.time()))


def open_operation(store: Store, phone: PhoneNumber) -> OperationId:
    def work(uow: Any) -> OperationId:
        number = uow.numbers.get_by_phone(phone)
        operation = uow.operations.open("onlinesim", make_order(), number, time.time())
        uow.numbers.mark_busy(number.id, operation.id, time.time())
        return OperationId(operation.id)

    return store.run(work)


def stored(store: Store) -> list[tuple[Message, Delivery | None]]:
    return store.run(lambda uow: uow.messages.search(MessageQuery(limit=1000)))


def online(store: Store, phone: PhoneNumber) -> bool:
    number = store.run(lambda uow: uow.numbers.get_by_phone(phone))
    assert number is not None
    return bool(number.online)


def wait_for(condition: Callable[[], Any], seconds: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


async def until(condition: Callable[[], Any], seconds: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture
def store_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    return copy_database(migrated_sqlite, tmp_path / "hardware.db")


@pytest.fixture
def sqlite_store(store_url: str) -> Iterator[SQLiteStore]:
    store = SQLiteStore.from_url(store_url)
    seed(store, *PHONES)
    yield store
    store.close()


@pytest.fixture
def serve(tmp_path: Path, store_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Start the real app on loopback with a TOML file holding the hardware tables."""
    servers: list[LiveServer] = []

    def start(toml: str, **env: str) -> LiveServer:
        settings = hardware_settings(store_url, tmp_path / "simgate.toml", toml, **env)
        seeding = SQLiteStore.from_url(store_url)
        try:
            if not seeding.run(lambda uow: uow.numbers.get_by_phone(PHONES[0])):
                seed(seeding, *PHONES)
        finally:
            seeding.close()
        server = LiveServer(settings).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class PushCounter:
    """A stand-in for Onlinesim's PUSH_SMS endpoint that counts what it receives."""

    def __init__(self) -> None:
        self.pushes: list[dict[str, Any]] = []
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                counter.pushes.append(json.loads(body))
                answer = b'{"response": 1}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_counter() -> Iterator[PushCounter]:
    counter = PushCounter()
    yield counter
    counter.close()
