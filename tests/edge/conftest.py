"""simgate under uvicorn over both SQL databases, for checks that must hold on each."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simgate.domain.model import NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.http.access import AuthThrottle
from simgate.services.inventory import import_numbers
from tests.conftest import LiveServer, copy_database, test_settings
from tests.hardware.conftest import PHONES, hardware_settings, seed

PHONE = "79281234567"
EJOIN_TOKEN = "edge-ejoin-token-0123456789"
SIGNING_KEY = "edge-signing-key-0123456789"
HARDWARE = f"""
[hardware.ejoin.devices.box1]
token = "{EJOIN_TOKEN}"
[hardware.ejoin.devices.box1.ports]
"1.01" = "{PHONES[0]}"
"1.02" = "{PHONES[1]}"
[hardware.android.devices.pixel]
signing_key = "{SIGNING_KEY}"
[hardware.android.devices.pixel.sims]
1 = "{PHONES[2]}"
"""


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return copy_database(request.getfixturevalue("migrated_sqlite"), tmp_path / "edge.db")


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """A live server with one SIM in its inventory."""
    live = LiveServer(test_settings(database_url)).start()
    spec = NumberSpec(PhoneNumber(PHONE), CountryName("russia"), OperatorName("beeline"), "")
    assert live.store is not None
    live.store.run(lambda uow: import_numbers(uow, [spec], time.time()))
    yield live
    live.stop()


@pytest.fixture
def app_client(server: LiveServer) -> Iterator[httpx.Client]:
    """One client, so one keep-alive connection: every test also checks it survives errors."""
    with server.client() as client:
        yield client
        assert client.get("/healthz").status_code == 200


def snapshot(server: LiveServer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a server on SQLite: a refused request must leave it equal."""
    path = server.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: _rows(db, t) for t in tables}


STARTUP_STAMPS = {("marketplaces", "updated_at")}
"""Written by the server's start-up (each marketplace's switch synced from the settings),
which may land after a test's first snapshot on a loaded machine: never by a request."""


def _rows(db: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    cursor = db.execute(f'SELECT * FROM "{table}"')
    kept = [i for i, column in enumerate(cursor.description) if (table, column[0]) not in STARTUP_STAMPS]
    return sorted((tuple(row[i] for i in kept) for row in cursor.fetchall()), key=repr)


def without_back_off(server: LiveServer) -> None:
    """Each 401 of a table of refusals is on purpose: the back-off must not turn the next
    cases into 429s (http/access.py)."""
    assert server.app is not None
    for middleware in server.app.user_middleware:
        if middleware.cls is AuthThrottle:
            middleware.kwargs["throttle"].free = 10**9


@pytest.fixture(scope="module")
def hardware_server(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[LiveServer]:
    """One server for a module of cases, on SQLite, with an Ejoin box and an Android phone;
    each case compares the whole database before and after its request (`refused`)."""
    folder = tmp_path_factory.mktemp("hardware-edge")
    url = copy_database(migrated_sqlite, folder / "edge.db")
    live = LiveServer(hardware_settings(url, folder / "simgate.toml", HARDWARE)).start()
    assert live.store is not None
    seed(live.store, *PHONES)
    without_back_off(live)
    yield live
    live.stop()


@pytest.fixture
def hardware_client(hardware_server: LiveServer) -> Iterator[httpx.Client]:
    """A fresh connection per case, checked alive after it: an error must not close it."""
    with hardware_server.client() as client:
        yield client
        assert client.get("/healthz").status_code == 200


def refused(
    server: LiveServer, send: Callable[[], httpx.Response], status: int, words: str
) -> httpx.Response:
    """`send()`'s answer, asserted to be `status` naming `words`, with no row changed."""
    before = snapshot(server)
    response = send()
    assert response.status_code == status, response.text
    assert words in response.text, response.text
    assert snapshot(server) == before
    return response
