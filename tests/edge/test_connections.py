"""Slow and greedy clients cannot hold the server (issue 12, item 2): http/guard.py."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simgate.http import guard
from simgate.http.guard import Limits
from tests.conftest import ADMIN_TOKEN, INTAKE_TOKEN, KEY, LiveServer, copy_database
from tests.conftest import test_settings as settings_for
from tests.edge.conftest import EJOIN_TOKEN, HARDWARE, snapshot
from tests.hardware.conftest import hardware_settings


def serve(sqlite_url: str, **limits: float) -> LiveServer:
    return LiveServer(settings_for(sqlite_url), limits=Limits(**limits)).start()  # type: ignore[arg-type]


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def connect(server: LiveServer, opened: list[socket.socket], source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    opened.append(sock)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the timeout)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def offer_150_mb(sock: socket.socket) -> None:
    for _ in range(1000):  # the server stops reading (and closes) long before the end
        sock.sendall(b"a" * 150_000)


def test_an_oversized_header_gets_431_and_is_not_held(sqlite_url: str, sockets: list[socket.socket]) -> None:
    server = serve(sqlite_url, max_head_bytes=16 * 1024)
    try:
        sock = connect(server, sockets)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with pytest.raises(OSError):
            offer_150_mb(sock)
        assert answer(sock).startswith(b"HTTP/1.1 431 ")
    finally:
        server.stop()


def test_a_head_that_never_ends_gets_408(sqlite_url: str, sockets: list[socket.socket]) -> None:
    server = serve(sqlite_url, head_timeout=0.5)
    try:
        silent, slow = connect(server, sockets), connect(server, sockets)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert answer(slow).startswith(b"HTTP/1.1 408 ")
        assert answer(silent).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 8
    finally:
        server.stop()


SLOW_BODIES = [
    (path, framing)
    for path in (
        f"/intake/sms\r\nAuthorization: Bearer {INTAKE_TOKEN}",
        f"/intake/ejoin/box1?token={EJOIN_TOKEN}",
        "/intake/android/pixel",
        f"/api/numbers/1/blacklist\r\nAuthorization: Bearer {ADMIN_TOKEN}",
        "/onlinesim/getNumber",
        "/login",
    )
    for framing in ("Content-Length: 1000\r\n\r\n{", 'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n')
]


@pytest.mark.parametrize(("path", "framing"), SLOW_BODIES, ids=lambda v: v.split("?")[0].split("\r")[0])
def test_a_body_that_never_ends_gets_408_and_stores_nothing(
    tmp_path: Path, migrated_sqlite: Path, sockets: list[socket.socket], path: str, framing: str
) -> None:
    url = copy_database(migrated_sqlite, tmp_path / "slow.db")
    settings = hardware_settings(url, tmp_path / "simgate.toml", HARDWARE)
    server = LiveServer(settings, limits=Limits(body_timeout=0.5)).start()
    try:
        before = snapshot(server)
        sock = connect(server, sockets)
        sock.sendall(f"POST {path}\r\nHost: x\r\n{framing}".replace("\r\n", " HTTP/1.1\r\n", 1).encode())
        started = time.monotonic()
        assert answer(sock).startswith(b"HTTP/1.1 408 ")  # then closed, not held
        assert time.monotonic() - started < 8
        assert snapshot(server) == before
        with server.client() as client:  # and the server is fine
            assert client.get("/healthz").status_code == 200
    finally:
        server.stop()


def test_a_body_answered_before_its_end_is_cut_not_answered_twice(
    sqlite_url: str, sockets: list[socket.socket]
) -> None:
    server = serve(sqlite_url, body_timeout=0.5)
    try:
        sock = connect(server, sockets)
        # Declared too large: the 413 goes at once; the rest never comes.
        sock.sendall(b"POST /intake/sms HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{")
        got = answer(sock)
        assert got.startswith(b"HTTP/1.1 413 ")
        assert b" 408 " not in got
    finally:
        server.stop()


def slow_clients(server: LiveServer, opened: list[socket.socket], count: int, sources: int) -> None:
    for i in range(count):
        try:
            sock = connect(server, opened, f"127.0.0.{2 + i % sources}")
            sock.sendall(b"POST /onlinesim HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass  # refused or already evicted: that is the point


def marketplace_calls(server: LiveServer, calls: int) -> list[float]:
    timings = []
    for _ in range(calls):
        started = time.monotonic()
        # A new connection each time, as a marketplace polling every few seconds would open.
        with httpx.Client(base_url=server.url, timeout=10) as client:
            response = client.post("/onlinesim/getServices", json={"key": KEY})
        assert response.status_code == 200, response.text
        timings.append(time.monotonic() - started)
    return timings


@pytest.mark.parametrize("sources", [1, 40], ids=["one-address", "many-addresses"])
def test_hundreds_of_slow_connections_do_not_starve_the_marketplace(
    sqlite_url: str, sockets: list[socket.socket], sources: int
) -> None:
    # Scaled down from 1,100 slow sockets against 900 connections: same ratio, fewer descriptors.
    server = serve(sqlite_url, max_connections=100, max_connections_per_client=10, head_timeout=60)
    try:
        slow_clients(server, sockets, 220, sources)
        timings = marketplace_calls(server, 20)
        slow_clients(server, sockets, 100, sources)
        timings += marketplace_calls(server, 20)
        assert max(timings) < 5, timings
        assert server._server is not None
        assert len(server._server.server_state.connections) <= 100
    finally:
        server.stop()


def test_keep_alive_survives_errors(sqlite_url: str) -> None:
    server = serve(sqlite_url)
    try:
        with server.client() as client:
            for _ in range(3):
                assert client.post("/onlinesim", content=b"[" * 2000).status_code == 400
                assert client.post("/intake/sms", content=b"\xff").status_code in (400, 401)
                assert client.get("/no/such/path").status_code == 404
                assert client.post("/onlinesim/getServices", json={"key": KEY}).status_code == 200
    finally:
        server.stop()


def test_a_refusal_that_fails_does_not_stop_the_other_timeouts(
    sqlite_url: str, sockets: list[socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One sweep looks at every connection's deadline (http/guard.py): if one connection's
    # refusal raises, the others due in the same sweep, and every later one, still time out.
    made = guard._response
    failures = [RuntimeError("the first refusal fails")]

    def failing_once(status: int, reason: str) -> bytes:
        if failures:
            raise failures.pop()
        return made(status, reason)

    monkeypatch.setattr(guard, "_response", failing_once)
    server = serve(sqlite_url, head_timeout=0.5)
    try:
        first, second = connect(server, sockets), connect(server, sockets)
        answers = []
        for sock in (first, second):
            sock.settimeout(4)
            try:
                answers.append(answer(sock))
            except TimeoutError:
                answers.append(b"")  # the one whose refusal failed
        assert [a[:13] for a in answers].count(b"HTTP/1.1 408 ") == 1, answers
        later = connect(server, sockets)
        later.settimeout(4)
        assert answer(later).startswith(b"HTTP/1.1 408 ")
    finally:
        server.stop()
