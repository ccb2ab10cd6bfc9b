"""The marketplaces' POST endpoints as one raw ASGI callable, ahead of Starlette's stack.

A GET_NUMBER or FINISH spent about as long in Starlette's layers (error and exception
middleware, throttle, gzip responder, router, Request and Response objects) as in the call
itself (docs/benchmarks.md). These endpoints need none of them: their answers are always
JSON in the marketplace's envelope, they are never throttled (http/access.py), and the few
headers they read are read here. Everything else (other methods, other paths, the console,
the hardware) goes through Starlette as before, and so do its 404s and 405s.

Same answers as the Starlette route would give: bounded body reading (http/body.py), 503 in
the envelope while writes fail, 500 in the envelope with the traceback in the log, and gzip
at level 1 for answers of 500 bytes or more when the caller accepts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qsl

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from simgate.credentials import bearer_token
from simgate.domain.throttle import Throttle
from simgate.http.access import too_many
from simgate.http.body import BodyError, read_stream, receive_chunks
from simgate.marketplaces.base import Answer, Marketplace
from simgate.storage.ports import OutcomeUnknown, StoreUnavailable

log = logging.getLogger("simgate.http")

Call = Callable[[Marketplace, str, "bytes | BodyError", list[str | None], float], Awaitable[Answer]]
"""Answers one marketplace call: (market, endpoint, body or why it could not be read,
credentials, when it started)."""

JSON = b"application/json; charset=utf-8"
GZIP_MINIMUM = 500
"""As GZipMiddleware(minimum_size=500) did: smaller answers are not worth the header."""
GZIP_IN_THREAD = 32 * 1024
"""Bigger answers (a large farm's GET_SERVICES: ~120 KB at 100,000 SIMs, ~0.8 ms to gzip)
compress off the event loop (zlib lets go of the GIL), so GET_NUMBERs beside never wait on it."""
GZIP_KEPT = 4
"""The last big answers kept with their gzip: an idle farm's GET_SERVICES is the same bytes
poll after poll (services/answers.py), and gzip was most of what such a call still cost."""
SMS_OUTCOME_UNKNOWN = (
    "database connection lost during commit: the SMS may or may not have been stored;"
    " send it again (a resend with the same message_id is recognised, never pushed twice)"
)


def unavailable(problem: StoreUnavailable, in_doubt: str | None = None) -> str:
    """The 503's text: "nothing was changed", unless the connection was lost while the unit
    was committing (OutcomeUnknown): then the outcome is unknown, and the text says so and
    what a retry does (`in_doubt`, or the one the unit's caller chose)."""
    if isinstance(problem, OutcomeUnknown) and in_doubt:
        return in_doubt
    return problem.answer


_encode = msgspec.json.Encoder().encode


def gzip(body: bytes) -> bytes:
    # Level 1: a 100,000-number GET_SERVICES answer gzips in ~1 ms instead of ~20 ms at 9.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


async def gzip_on_thread(body: bytes) -> bytes:
    return await asyncio.to_thread(gzip, body)


class GzipKept:
    """gzip for big bodies, keeping the last few: an unchanged GET_SERVICES answer (an idle
    farm polled again and again) is not compressed twice. Only used on the event loop."""

    def __init__(self) -> None:
        self._kept: list[tuple[bytes, bytes]] = []
        """(body, its gzip), newest last."""

    async def __call__(self, body: bytes) -> bytes:
        # The kept bytes if the same body was sent lately (comparing equal bytes costs ~1 %
        # of compressing them), else compressed on a thread.
        for sent, compressed in self._kept:
            if sent == body:
                return compressed
        compressed = await asyncio.to_thread(gzip, body)
        self._kept.append((body, compressed))
        del self._kept[:-GZIP_KEPT]
        return compressed


class MarketplaceRoutes:
    """`POST` on a marketplace's path is answered here; anything else goes on to `app`."""

    def __init__(self, app: ASGIApp, markets: Sequence[Marketplace], call: Call, max_body: int) -> None:
        self.app, self.call, self.max_body = app, call, max_body
        self.gzip_big = GzipKept()
        self.exact: dict[str, Marketplace] = {}
        self.under: dict[str, Marketplace] = {}
        """Paths `/root/{endpoint}`, keyed by `/root/`: the endpoint is one segment."""
        for market in markets:
            for path in market.paths:
                if "{" not in path:
                    self.exact[path] = market
                elif path.endswith("/{endpoint}") and path.count("{") == 1:
                    self.under[path[: -len("{endpoint}")]] = market

    @classmethod
    def wrapping(
        cls, markets: Sequence[Marketplace], call: Call, max_body: int
    ) -> Callable[[ASGIApp], ASGIApp]:
        return lambda app: cls(app, markets, call, max_body)

    def route(self, path: str) -> tuple[Marketplace, str] | None:
        market = self.exact.get(path)
        if market is not None:
            return market, ""
        head, _, endpoint = path.rpartition("/")
        market = self.under.get(head + "/")
        if market is not None and endpoint:
            return market, endpoint
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = self.route(scope["path"])
            if found is not None:
                await self.serve(*found, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def serve(
        self, market: Marketplace, endpoint: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first one wins, as in Starlette's Headers.get

        def header(name: bytes, default: str = "") -> str:
            value = headers.get(name)
            return default if value is None else value.decode("latin-1")

        body: bytes | BodyError
        try:
            body = await read_stream(
                receive_chunks(receive),
                header(b"content-length"),
                header(b"content-encoding", "identity"),
                self.max_body,
            )
        except BodyError as problem:
            body = problem
        query = scope.get("query_string", b"")
        apikey = (
            dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)).get("apikey") if query else None
        )
        try:
            answer = await self.call(
                market, endpoint, body, [bearer_token(header(b"authorization")), apikey], started
            )
            status, payload = answer.status, answer.payload
        except StoreUnavailable as problem:
            # Answer at once: the marketplace's deadline is 10 s and it will ask again.
            status, payload = market.envelope(503, unavailable(problem))
        except Exception:
            # Never a traceback on the wire; the log has it.
            log.exception("%s %s failed", market.name, scope["path"][:80])
            status, payload = market.envelope(500, "internal error")
        accepted = "gzip" in header(b"accept-encoding")
        await self.respond(send, status, _encode(payload), accepted, gzip_big=self.gzip_big)

    @staticmethod
    async def respond(
        send: Send,
        status: int,
        body: bytes,
        gzip_accepted: bool,
        headers: Sequence[tuple[bytes, bytes]] = (),
        gzip_big: Callable[[bytes], Awaitable[bytes]] = gzip_on_thread,
    ) -> None:
        extra: list[tuple[bytes, bytes]] = list(headers)
        if len(body) >= GZIP_MINIMUM:
            extra.append((b"vary", b"Accept-Encoding"))
            if gzip_accepted:
                body = await gzip_big(body) if len(body) >= GZIP_IN_THREAD else gzip(body)
                extra.append((b"content-encoding", b"gzip"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", JSON),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class IntakeRoute:
    """`POST /intake/sms` answered here, ahead of Starlette's stack, as the marketplaces' are.

    The hardware's SMS path, once per SMS: Starlette's layers cost about as much as storing
    the SMS (docs/benchmarks.md, issue 14). The answers are the Starlette route's: the intake
    realm's throttle (http/access.py: a 429 before the body is read, every 401 counted), the
    bounded body reader, 503 while the database is unavailable, 500 without a traceback.
    """

    PATH = "/intake/sms"

    def __init__(
        self,
        app: ASGIApp,
        handle: Callable[[bytes, str | None], Awaitable[tuple[int, dict[str, object]]]],
        throttle: Throttle,
        max_body: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.handle, self.throttle = app, handle, throttle
        self.max_body, self.clock = max_body, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.PATH:
            await self.serve(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)

        def header(name: bytes, default: str = "") -> str:
            value = headers.get(name)
            return default if value is None else value.decode("latin-1")

        gzip_accepted = "gzip" in header(b"accept-encoding")
        client = scope.get("client")
        who = f"intake:{client[0] if client else ''}"
        wait = self.throttle.wait(who, self.clock())
        if wait > 0:
            seconds, message = too_many(wait)
            refusal = [(b"retry-after", str(seconds).encode()), (b"cache-control", b"no-store")]
            await MarketplaceRoutes.respond(send, 429, _encode({"error": message}), gzip_accepted, refusal)
            return
        status: int
        payload: dict[str, object]
        try:
            body = await read_stream(
                receive_chunks(receive),
                header(b"content-length"),
                header(b"content-encoding", "identity"),
                self.max_body,
            )
            status, payload = await self.handle(body, bearer_token(header(b"authorization")))
        except BodyError as problem:
            status, payload = problem.status, {"error": str(problem)}
        except StoreUnavailable as problem:
            # Hardware keeps an SMS it was not told was stored, and sends it again.
            status, payload = 503, {"error": unavailable(problem, SMS_OUTCOME_UNKNOWN)}
        except Exception:
            log.exception("POST %s failed", self.PATH)
            status, payload = 500, {"error": "internal error"}
        if status == 401:
            self.throttle.failed(who, self.clock())
        await MarketplaceRoutes.respond(send, status, _encode(payload), gzip_accepted)
