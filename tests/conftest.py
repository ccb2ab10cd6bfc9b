"""Shared fixtures: stores for every backend, a migrated SQLite file, a live HTTP server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from simgate.bootstrap import build_app
from simgate.config import Settings, load_settings
from simgate.storage import schema
from simgate.storage.memory import MemoryStore
from simgate.storage.ports import Store
from simgate.storage.sqlite import SQLiteStore

KEY = "test-partner-key"
INTAKE_TOKEN = "test-intake-token"
ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'simgate.db'}"
    schema.upgrade(url)
    return url


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every storage backend, so one test module holds them all to one contract."""
    if request.param == "memory":
        yield MemoryStore(revision=schema.head_revision())
        return
    url = f"sqlite:///{tmp_path / 'contract.db'}"
    schema.upgrade(url)
    sqlite = SQLiteStore.from_url(url)
    yield sqlite
    sqlite.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_settings(database_url: str, **overrides: str) -> Settings:
    environ = {
        "SIMGATE_DATABASE_URL": database_url,
        "SIMGATE_ONLINESIM_KEY": KEY,
        "SIMGATE_INTAKE_TOKEN": INTAKE_TOKEN,
        "SIMGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "SIMGATE_PUSH_RETRY_SECONDS": "0.2",
    }
    environ.update({f"SIMGATE_{k.upper()}": v for k, v in overrides.items()})
    return load_settings(environ)


@dataclass
class LiveServer:
    """simgate's app under a real uvicorn on loopback, in a thread; restartable on one database."""

    settings: Settings
    port: int = field(default_factory=free_port)
    store: Store | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.store = SQLiteStore.from_url(self.settings.database_url)
        app = build_app(self.settings, self.store, revision=schema.head_revision())
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self.store is not None:
            self.store.close()
        self._server = self._thread = self.store = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


@pytest.fixture
def live_server(sqlite_url: str) -> Iterator[LiveServer]:
    server = LiveServer(test_settings(sqlite_url)).start()
    yield server
    server.stop()
