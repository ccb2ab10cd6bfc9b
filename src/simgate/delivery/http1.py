"""A lean HTTP/1.1 client for pushes: keep-alive connections per origin, one write per request.

A push is one small POST and one small answer, thousands a second at a burst. aiohttp's
client cost ~0.3 ms of CPU per push here, about as much as storing the SMS (docs/benchmarks.md,
issue 14); most of it is machinery a push never uses (cookies, redirects, streaming payloads,
tracing, per-request timer handles). This client keeps what a push needs: http and https,
connections reused while the server keeps them alive, answers parsed by httptools (C, the
parser uvicorn serves us with), Content-Length, chunked and close-delimited bodies, gzip and
deflate answers, a bound on concurrent requests and on every wait.

Redirects: a 307 or 308 is followed (the same POST, at most MAX_REDIRECTS times), as
aiohttp did; a 301, 302 or 303 is returned as the answer (aiohttp turned those into a GET
without the push, which no receiver answers with SUCCESS), so the verdict sees the status.

Errors are raised as OSError (ConnectionError for a connection lost before the answer ended),
ValueError (a URL this client cannot reach) or TimeoutError; the sender turns them into values.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ssl
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urljoin, urlsplit

import httptools

IDLE_SECONDS = 4.0
"""An idle connection is reused for this long at most. Servers close theirs after a few
seconds (uvicorn 5 s, nginx 75 s): a push sent on a connection the server is closing at that
moment is lost (and tried again later), so the client gives up on idle connections first."""
MAX_KEPT = 4096
"""Answer bytes kept (the verdict reads a status word); the rest is read and dropped."""
MAX_READ = 1 << 20
"""An answer longer than this is cut off and its connection closed."""
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Target:
    origin: tuple[str, str, int]
    """scheme, host, port: connections are shared by requests with the same origin."""
    head: bytes
    """The request line and the headers every request to this URL carries."""


@lru_cache(maxsize=64)
def target(url: str) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    netloc_host = f"[{host}]" if ":" in host else host
    default = port == (443 if scheme == "https" else 80)
    host_header = netloc_host if default else f"{netloc_host}:{port}"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}", "Accept: */*"]
    if parts.username is not None:
        # As aiohttp did: credentials in the URL become a Basic Authorization header.
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append(f"Authorization: Basic {base64.b64encode(pair.encode()).decode()}")
    _check(path + host_header)
    return Target((scheme, host, port), ("\r\n".join(lines) + "\r\n").encode("latin-1"))


def _check(text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError("a line break in a request line or header")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer read by httptools."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.chunks: list[bytes] = []
        self.size = 0
        self.encoding = b""
        self.location: str | None = None
        self.headers_done = False
        self.answered = False
        """This request's answer is complete: any further message is none of ours."""
        self.delimited = False
        """The body has a length (Content-Length or chunked): EOF before its end is an error."""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: this connection is not in a known state
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"malformed answer: {error}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.delimited:
            waiter.set_result((self.status, self._body()))  # the end of the body is EOF
        else:
            waiter.set_exception(
                ConnectionError(f"connection closed before the answer ended ({exc or 'EOF'})")
            )

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.answered:
            # More than the answer in one read (the start of another): kept, the next
            # request's answer would be parsed as the rest of this one (its status, a 200,
            # over the real one's). The connection is in no known state: never reused.
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-encoding":
            self.encoding = value.strip().lower()
        elif lowered == b"location":
            self.location = value.decode("latin-1").strip()
        elif lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.size < MAX_KEPT:
            self.chunks.append(body)
        self.size += len(body)
        if self.size > MAX_READ:
            waiter = self.waiter
            self.close()
            if waiter is not None and not waiter.done():
                waiter.set_result((self.status, self._body()))

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            self._reset()
            return
        self.answered = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if not self.parser.should_keep_alive():
                self.close()
            waiter.set_result((self.status, self._body()))

    # the client's side

    def _body(self) -> bytes:
        body = b"".join(self.chunks)
        if self.encoding in (b"gzip", b"x-gzip", b"deflate") and body:
            body = _decompress(body, self.encoding)
        return body[:MAX_KEPT]

    def _fail(self, error: Exception) -> None:
        waiter = self.waiter
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


def _decompress(body: bytes, encoding: bytes) -> bytes:
    # wbits 47 takes a gzip or zlib header; a bare deflate stream (some servers send that
    # for "deflate") needs -15. A body that is neither is returned as it came.
    for wbits in (47, -15):
        try:
            inflater = zlib.decompressobj(wbits)
            return inflater.decompress(body, MAX_KEPT)
        except zlib.error:
            continue
    return body


class Http1Client:
    """POST a body, get (status, answer): at most `connections` requests at once, each
    bounded by `timeout` (connecting by `connect_timeout`)."""

    def __init__(
        self,
        timeout: float,
        connections: int = 64,
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self._slots = asyncio.Semaphore(connections)
        self._idle: dict[tuple[str, str, int], collections.deque[_Connection]] = {}
        self._ssl = ssl_context
        """https: the system's trusted certificates, host names checked (made when first needed)."""
        self._closed = False

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, the first MAX_KEPT bytes of the answer, decompressed)."""
        async with asyncio.timeout(self.timeout):
            for _ in range(MAX_REDIRECTS):
                status, answer, location = await self._post(url, body, headers)
                if location is None:
                    return status, answer
                url = urljoin(url, location)
            return status, answer

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        if self._closed:
            raise ConnectionError("the client is closed")
        goal = target(url)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if extra.count("\n") != len(headers) or extra.count("\r") != len(headers):
            raise ValueError("a line break in a header")  # it would smuggle a header in
        data = b"".join((goal.head, extra.encode("latin-1"), b"Content-Length: %d\r\n\r\n" % len(body), body))
        async with self._slots:
            connection = self._reuse(goal.origin) or await self._connect(goal.origin)
            done = False
            try:
                status, answer = await connection.request(data)
                done = True
            finally:
                if done and not connection.lost and not self._closed:
                    connection.waiter = None
                    connection.idle_since = time.monotonic()
                    self._idle.setdefault(goal.origin, collections.deque()).append(connection)
                else:
                    connection.close()  # cut off, failed mid-answer, or the client closed
            return status, answer, connection.location if status in (307, 308) else None

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_kept = time.monotonic() - IDLE_SECONDS
        while idle and (idle[0].lost or idle[0].idle_since < oldest_kept):
            idle.popleft().close()  # expired: the server may be closing it
        while idle:
            connection = idle.pop()  # the most recent: the least likely to be closing
            if not connection.lost and connection.idle_since >= oldest_kept:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        async with asyncio.timeout(self.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: _Connection(origin), host, port, ssl=context,
                server_hostname=host if context is not None else None,
            )  # fmt: skip
        return protocol

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
