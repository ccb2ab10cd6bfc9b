"""simgate under uvicorn over both SQL databases, for checks that must hold on each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simgate.domain.model import NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.services.inventory import import_numbers
from tests.conftest import LiveServer, copy_database, test_settings

PHONE = "79281234567"


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
