"""The push sender's HTTP/1.1 client (delivery/http1.py) against real servers on loopback:
what a receiver may answer (lengths, chunks, gzip, no length, redirects, slowness, a hang-up)
and the connections it keeps."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from simgate.delivery.http1 import IDLE_SECONDS, MAX_KEPT, Http1Client, target
from simgate.delivery.sender import WebhookSender
from simgate.domain.messages import PushRequest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.peers: set[tuple[str, int]] = set()
        self.url = ""


async def _serve(handler: Handler, receiver: Receiver, **site: object) -> web.AppRunner:
    async def record(request: web.Request) -> web.StreamResponse:
        receiver.bodies.append(await request.read())
        receiver.headers.append(dict(request.headers))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            receiver.peers.add((peer[0], peer[1]))
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0, **site)  # type: ignore[arg-type]
    await tcp.start()
    port = runner.addresses[0][1]
    receiver.url = f"{'https' if site.get('ssl_context') else 'http'}://127.0.0.1:{port}"
    return runner


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, **site: object) -> Receiver:
        receiver = Receiver()
        runners.append(await _serve(handler, receiver, **site))
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()


async def success(request: web.Request) -> web.Response:
    return web.json_response({"status": "SUCCESS"})


async def test_a_push_is_posted_with_its_headers_and_the_answer_read(
    serve: Callable[..., Awaitable[Receiver]],
) -> None:
    receiver = await serve(success)
    client = Http1Client(timeout=5)
    status, body = await client.post(
        receiver.url + "/v1/PUSH_SMS?x=1",
        b'{"a":1}',
        {"Content-Type": "application/json", "User-Agent": "t/1"},
    )
    await client.close()
    assert (status, body) == (200, b'{"status": "SUCCESS"}')
    assert receiver.bodies == [b'{"a":1}']
    sent = receiver.headers[0]
    assert sent["Content-Type"] == "application/json"
    assert sent["User-Agent"] == "t/1"
    assert sent["Content-Length"] == "7"
    assert sent["Host"] == receiver.url.removeprefix("http://")


async def test_connections_are_kept_alive_and_reused(serve: Callable[..., Awaitable[Receiver]]) -> None:
    receiver = await serve(success)
    client = Http1Client(timeout=5, connections=4)
    for _ in range(3):
        await asyncio.gather(*(client.post(receiver.url + "/p", b"x", {}) for _ in range(4)))
    await client.close()
    assert len(receiver.bodies) == 12
    assert len(receiver.peers) == 4, "one connection per concurrent push, reused after"


async def test_an_idle_connection_is_not_reused_past_its_time(
    serve: Callable[..., Awaitable[Receiver]], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await serve(success)
    client = Http1Client(timeout=5)
    await client.post(receiver.url, b"x", {})
    clock = __import__("time").monotonic() + IDLE_SECONDS + 1
    monkeypatch.setattr("simgate.delivery.http1.time.monotonic", lambda: clock)
    await client.post(receiver.url, b"y", {})
    await client.close()
    assert len(receiver.peers) == 2


async def test_a_connection_the_server_closed_is_replaced(serve: Callable[..., Awaitable[Receiver]]) -> None:
    async def closing(request: web.Request) -> web.Response:
        return web.json_response({"status": "SUCCESS"}, headers={"Connection": "close"})

    receiver = await serve(closing)
    client = Http1Client(timeout=5)
    answers = [await client.post(receiver.url, b"x", {}) for _ in range(3)]
    await client.close()
    assert [status for status, _ in answers] == [200, 200, 200]
    assert len(receiver.peers) == 3


async def test_chunked_and_gzip_answers_are_read_whole(serve: Callable[..., Awaitable[Receiver]]) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        packed = gzip.compress(b'{"status":"SUCCESS"}')
        await response.write(packed[:5])
        await asyncio.sleep(0.01)
        await response.write(packed[5:])
        await response.write_eof()
        return response

    receiver = await serve(chunked)
    client = Http1Client(timeout=5)
    assert await client.post(receiver.url, b"x", {}) == (200, b'{"status":"SUCCESS"}')
    assert await client.post(receiver.url, b"x", {}) == (200, b'{"status":"SUCCESS"}')
    await client.close()
    assert len(receiver.peers) == 1


async def test_a_long_answer_is_cut_to_what_the_verdict_needs(
    serve: Callable[..., Awaitable[Receiver]],
) -> None:
    async def long(request: web.Request) -> web.Response:
        return web.Response(body=b"A" * (3 * MAX_KEPT))

    receiver = await serve(long)
    client = Http1Client(timeout=5)
    status, body = await client.post(receiver.url, b"x", {})
    await client.close()
    assert status == 200
    assert body == b"A" * MAX_KEPT


async def _raw_server(answer: bytes) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/push"


async def test_an_answer_ended_by_closing_the_connection_is_read() -> None:
    server, url = await _raw_server(
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"status":"SUCCESS"}'
    )
    client = Http1Client(timeout=5)
    try:
        assert await client.post(url, b"x", {}) == (200, b'{"status":"SUCCESS"}')
    finally:
        await client.close()
        server.close()


async def test_a_hang_up_before_the_answer_is_an_error() -> None:
    for answer in (b"", b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"sta'):
        server, url = await _raw_server(answer)
        client = Http1Client(timeout=5)
        try:
            with pytest.raises(ConnectionError):
                await client.post(url, b"x", {})
        finally:
            await client.close()
            server.close()


async def test_a_307_or_308_is_followed_and_a_303_returned(serve: Callable[..., Awaitable[Receiver]]) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        if request.path == "/old":
            raise web.HTTPPermanentRedirect("/new")
        if request.path == "/temp":
            raise web.HTTPTemporaryRedirect("/new")
        if request.path == "/other":
            raise web.HTTPSeeOther("/new")
        return web.json_response({"status": "SUCCESS", "path": request.path})

    receiver = await serve(moved)
    client = Http1Client(timeout=5)
    assert (await client.post(receiver.url + "/old", b"x", {}))[0] == 200
    assert (await client.post(receiver.url + "/temp", b"y", {}))[0] == 200
    assert (await client.post(receiver.url + "/other", b"z", {}))[0] == 303
    await client.close()
    assert receiver.bodies == [b"x", b"x", b"y", b"y", b"z"], "the same POST, body and all"


async def test_a_slow_receiver_times_out_and_its_connection_is_dropped(
    serve: Callable[..., Awaitable[Receiver]],
) -> None:
    calls = 0

    async def slow_once(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(2)
            return web.json_response({"status": "LATE"})
        return web.json_response({"status": "SUCCESS"})

    receiver = await serve(slow_once)
    client = Http1Client(timeout=0.3)
    with pytest.raises(TimeoutError):
        await client.post(receiver.url, b"x", {})
    # The second may take its time (a loaded machine can stall loopback past 0.3 s): on the
    # first's connection it would wait for that late answer and get it; on a new one, its own.
    client.timeout = client.connect_timeout = 10.0
    assert await client.post(receiver.url, b"y", {}) == (200, b'{"status": "SUCCESS"}'), (
        "never the late answer of the first"
    )
    await client.close()
    assert len(receiver.peers) == 2


async def test_what_cannot_be_sent_is_refused_before_connecting() -> None:
    client = Http1Client(timeout=5)
    with pytest.raises(ValueError, match="scheme"):
        await client.post("ftp://example.org/x", b"x", {})
    with pytest.raises(ValueError, match="line break"):
        await client.post("http://127.0.0.1:9/x", b"x", {"X-A": "1\r\nX-Injected: 1"})
    await client.close()


def test_the_request_head_is_made_once_per_url() -> None:
    goal = target("http://user:p%40ss@[::1]:8080/v1/PUSH_SMS?a=b")
    assert goal.origin == ("http", "::1", 8080)
    assert goal.head.startswith(b"POST /v1/PUSH_SMS?a=b HTTP/1.1\r\nHost: [::1]:8080\r\n")
    assert b"Authorization: Basic dXNlcjpwQHNz\r\n" in goal.head  # user:p@ss
    assert target("https://example.org").head.startswith(b"POST / HTTP/1.1\r\nHost: example.org\r\n")


async def test_the_sender_reports_a_refused_connection_and_a_timeout_as_values(
    serve: Callable[..., Awaitable[Receiver]],
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    receiver = await serve(hang)
    async with WebhookSender(timeout=0.2) as sender:
        refused = await sender.send(PushRequest("http://127.0.0.1:9/x", b"x", {}))
        late = await sender.send(PushRequest(receiver.url, b"x", {}))
    assert refused.status is None
    assert refused.error is not None
    assert "refused" in refused.error.lower()
    assert late.status is None
    assert late.error == "timeout after 0.2s"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (key, certificate)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_https_is_spoken_and_the_certificate_checked(
    serve: Callable[..., Awaitable[Receiver]], certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    receiver = await serve(success, ssl_context=served)
    trusting = ssl.create_default_context(cafile=str(cert))
    client = Http1Client(timeout=5, ssl_context=trusting)
    assert (await client.post(receiver.url, b"x", {}))[0] == 200
    assert (await client.post(receiver.url, b"x", {}))[0] == 200
    await client.close()
    assert len(receiver.peers) == 1
    stranger = Http1Client(timeout=5)  # the system's trust store does not know this certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        await stranger.post(receiver.url, b"x", {})
    await stranger.close()


async def test_a_push_answered_after_the_client_closed_leaves_no_connection_open(
    serve: Callable[..., Awaitable[Receiver]],
) -> None:
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        arrived.set()
        await answer.wait()
        return web.json_response({"status": "SUCCESS"})

    receiver = await serve(held)
    client = Http1Client(timeout=5)
    push = asyncio.create_task(client.post(receiver.url, b"x", {}))
    await asyncio.wait_for(arrived.wait(), 10)
    await client.close()
    answer.set()
    assert (await push)[0] == 200
    assert not any(client._idle.values()), "kept for reuse by a closed client"


async def test_bytes_after_an_answer_in_the_same_read_never_answer_the_next_push() -> None:
    # A receiver that sends more than its answer (here the start of a second one, in the
    # same segment): the connection is in no known state, so it is not used again; kept,
    # the next push's own 500 would be read as the rest of that stale "200" (delivered).
    answers = [
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nERRORHTTP/1.1 200 OK\r\nX-A: b",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nERROR",
    ]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(answers.pop(0))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/push"
    client = Http1Client(timeout=5)
    try:
        assert await client.post(url, b"x", {}) == (500, b"ERROR")
        assert await client.post(url, b"x", {}) == (500, b"ERROR")
    finally:
        await client.close()
        server.close()
