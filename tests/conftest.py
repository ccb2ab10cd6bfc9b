"""Shared fixtures: stores for every backend, a migrated SQLite file, a live HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from simgate.bootstrap import build_app, open_store
from simgate.config import Settings, load_settings
from simgate.http.guard import Limits
from simgate.server import uvicorn_config
from simgate.services.lanes import register_marketplaces
from simgate.storage import schema
from simgate.storage.memory import MemoryStore
from simgate.storage.ports import Store
from simgate.storage.sqlite import SQLiteStore


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """With SIMGATE_TEST_CPU_LOG=FILE, append each test's CPU seconds (user+sys of this process
    and of the children it waited for, setup to teardown) to FILE: wall time is noisy on a
    shared machine, CPU is what a test costs CI (README, Testing)."""
    log = os.environ.get("SIMGATE_TEST_CPU_LOG")
    if not log:
        yield
        return
    before = _cpu_seconds()
    wall = time.monotonic()
    yield
    cpu = _cpu_seconds() - before
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{cpu:.3f}\t{time.monotonic() - wall:.3f}\t{item.nodeid}\n")


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `make test` (pytest-xdist, --dist loadgroup) the end-to-end tests, which start
    servers, simulators and a browser, run one at a time on one worker while the other runs
    the rest: two of them at once on two cores would make their deadlines a matter of luck."""
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.xdist_group("e2e"))


KEY = "test-partner-key"
INTAKE_TOKEN = "test-intake-token"
ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the head once per session (per xdist worker). A test's database
    is a copy: the same bytes as its own `schema.upgrade`, for ~1 ms of CPU instead of ~0.25 s.
    The migrations themselves are tested where upgrading is the point (test_migration_*, the
    CLI's `migrate`, test_schema_revisions)."""
    path = tmp_path_factory.mktemp("migrated") / "simgate.db"
    schema.upgrade(f"sqlite:///{path}")
    assert not path.with_name(path.name + "-wal").exists()  # the file alone is the database
    return path


def copy_database(template: Path, path: Path) -> str:
    """`sqlite:///path`, a copy of the migrated template (migrated_sqlite)."""
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    return copy_database(migrated_sqlite, tmp_path / "simgate.db")


PG_URL = os.environ.get("SIMGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_CLUSTER = os.environ.get("SIMGATE_TEST_POSTGRES_CLUSTER", "")
"""The cluster ("VERSION NAME", as pg_lsclusters shows it) that the tests restarting PostgreSQL
restart: it must be the one SIMGATE_TEST_POSTGRES_URL points to. By default the first
version's `main` cluster; set it to a cluster of your own (e.g. "15 faults" on another port)
when others use `main`."""


def restart_postgres_command() -> list[str]:
    """pg_ctlcluster restarting PG_CLUSTER (fast shutdown: sessions are cut off mid-work)."""
    if PG_CLUSTER:
        version, name = PG_CLUSTER.split()
    else:
        version, name = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0], "main"
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"]


TABLES = (
    "delivery_attempts, deliveries, messages, number_exclusions, operations, numbers, write_probe,"
    " alert_notices, alerts, marketplace_calls, console_sessions, marketplaces,"
    " number_counts, exclusion_counts, number_count_deltas, exclusion_count_deltas, history_prunes,"
    " pruned_sales"
)
FRESH = "INSERT INTO marketplaces (name, enabled, weight, updated_at) VALUES ('onlinesim', TRUE, 1, 0)"
"""What migration 0005 leaves in a fresh database, put back after each truncation."""


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A reachable PostgreSQL, or a skip saying why (a failure under SIMGATE_REQUIRE_POSTGRES=1)."""
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        reason = f"no PostgreSQL at {PG_URL} ({str(error).strip()}); set SIMGATE_TEST_POSTGRES_URL"
        if os.environ.get("SIMGATE_REQUIRE_POSTGRES") == "1":
            pytest.fail("SIMGATE_REQUIRE_POSTGRES=1 but " + reason)
        pytest.skip(reason)
    return PG_URL


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped afterwards."""
    import psycopg

    name = f"simgate_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(postgres_server, name)
    schema.upgrade(url)
    yield url
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_emptying(postgres_database: str) -> str:
    """What empties the session database as `TRUNCATE TABLES RESTART IDENTITY` would, in one
    transaction: DELETE every row (foreign keys and row triggers off: every table goes), restart
    the tables' sequences, and bump count_version as TRUNCATE's statement trigger does. TRUNCATE
    makes new files for every table and costs ~0.4 s of PostgreSQL's time per test; a few
    rows deleted cost ~0.05 s."""
    import psycopg

    tables = [table.strip() for table in TABLES.split(",")]
    with psycopg.connect(postgres_database) as conn:
        sequences = [
            str(row[0])
            for row in conn.execute(
                "SELECT s.oid::regclass::text FROM pg_class s"
                " JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid"
                " JOIN pg_class t ON t.oid = d.refobjid"
                " WHERE s.relkind = 'S' AND d.deptype IN ('a', 'i') AND t.relname = ANY(%s)",
                (tables,),
            )
        ]
    return "".join(
        [
            "SET LOCAL session_replication_role = replica;",
            *(f"DELETE FROM {table};" for table in tables),
            *(f"ALTER SEQUENCE {sequence} RESTART;" for sequence in sequences),
            "SET LOCAL session_replication_role = DEFAULT;",
            "UPDATE count_version SET version = version + 1 WHERE id = 1;",
            FRESH,
        ]
    )


@pytest.fixture
def postgres_url(postgres_database: str, postgres_emptying: str) -> str:
    """The session database, emptied: every test starts from no rows and fresh ids."""
    import psycopg

    with psycopg.connect(postgres_database) as conn:  # one transaction, committed on leaving
        conn.execute(postgres_emptying)  # type: ignore[arg-type]  # built from our own names
    return postgres_database


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every storage backend, so one test module holds them all to one contract.

    Onlinesim is the one marketplace registered, so single-marketplace tests keep their
    meaning: every SIM sits in its lane."""
    opened: Store
    if request.param == "memory":
        opened = MemoryStore(revision=schema.head_revision())
    elif request.param == "postgres":
        from simgate.storage.postgres import PostgresStore

        opened = PostgresStore(request.getfixturevalue("postgres_url"), min_size=1, max_size=4)
    else:
        url = copy_database(request.getfixturevalue("migrated_sqlite"), tmp_path / "contract.db")
        opened = SQLiteStore.from_url(url)
    opened.run(lambda uow: register_marketplaces(uow, ["onlinesim"], 0.0))
    yield opened
    opened.close()


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


class PromptServer(uvicorn.Server):
    """uvicorn's Server, except that `exit_now()` wakes its main loop at once instead of at its
    next 0.1 s tick: hundreds of tests stop a server, and each waited for that tick."""

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:  # uvicorn's loop, with the sleep made interruptible
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def exit_now(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)


@dataclass
class LiveServer:
    """simgate's app under a real uvicorn on loopback, in a thread; restartable on one database."""

    settings: Settings
    port: int = field(default_factory=free_port)
    store: Store | None = None
    limits: Limits = field(default_factory=Limits)
    app: Starlette | None = None
    _server: PromptServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.store = open_store(self.settings)
        app = build_app(self.settings, self.store, revision=schema.head_revision())
        self.app = app
        config = uvicorn_config(
            app, host="127.0.0.1", port=self.port, limits=self.limits, log_level="warning"
        )
        self._server = PromptServer(config)
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
            self._server.exit_now()
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
