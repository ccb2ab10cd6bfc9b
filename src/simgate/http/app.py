"""The Starlette application: every endpoint of CONTRACT.md, JSON errors everywhere."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from simgate.domain.throttle import Throttle
from simgate.http.access import AuthThrottle, metrics_refusal
from simgate.http.body import BodyError, bearer, read_body
from simgate.http.call_metrics import Metrics
from simgate.http.fastpath import Call, IntakeRoute, MarketplaceRoutes
from simgate.http.fastpath import unavailable as unavailable_text
from simgate.http.intake import Intake
from simgate.http.requestlog import log_call
from simgate.marketplaces.base import Answer, Marketplace
from simgate.services.alerts import CallLog
from simgate.storage.ports import Store, StoreUnavailable

JSON = "application/json; charset=utf-8"
Endpoint = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
_encode = msgspec.json.Encoder().encode
log = logging.getLogger("simgate.http")


def json_response(status: int, payload: Any) -> Response:
    return Response(_encode(payload), status_code=status, media_type=JSON)


@dataclass
class AppDeps:
    store: Store
    marketplaces: list[Marketplace]
    """The enabled ones; each serves its own paths (marketplaces/base.py)."""
    intake: Intake
    expected_revision: str | None
    calls: CallLog | None = None
    """Each marketplace's last answered call, for the "stopped polling" alert."""
    max_body_bytes: int = 1_048_576
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    background: list[Callable[[], AbstractAsyncContextManager[None]]] = field(default_factory=list)
    """Started with the app and stopped with it (the delivery worker, hardware drivers)."""
    extra_routes: list[BaseRoute] = field(default_factory=list)
    """Routes of the hardware drivers and the operator's console."""
    metrics_token: str | None = None
    throttle: Throttle = field(default_factory=Throttle)
    """Failed sign-ins per client address (http/access.py)."""


class SimgateApp(Starlette):
    """Starlette with the marketplaces' raw route ahead of its whole stack (http/fastpath.py)."""

    def __init__(self, front: Callable[[ASGIApp], ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        self.front = front

    def build_middleware_stack(self) -> ASGIApp:
        return self.front(super().build_middleware_stack())


def create_app(deps: AppDeps) -> Starlette:
    call = marketplace_call(deps, Metrics(deps.registry))
    routes: list[BaseRoute] = [
        *(
            Route(path, marketplace_endpoint(market, call, deps.max_body_bytes), methods=["POST"])
            for market in deps.marketplaces
            for path in market.paths
        ),
        # Answered by the raw route ahead of Starlette (http/fastpath.py); declared here too,
        # so a GET gets its 405 and the route list shows it.
        Route("/intake/sms", intake_endpoint(deps), methods=["POST"]),
        *probe_routes(deps),
        *deps.extra_routes,
    ]
    marketplace_front = MarketplaceRoutes.wrapping(deps.marketplaces, call, deps.max_body_bytes)

    def front(app: ASGIApp) -> ASGIApp:
        intake = IntakeRoute(app, deps.intake.handle, deps.throttle, deps.max_body_bytes)
        return marketplace_front(intake)

    return SimgateApp(
        front,
        routes=routes,
        # Level 1: a 100,000-number GET_SERVICES answer gzips in ~1 ms instead of ~20 ms at
        # Starlette's default 9, for a slightly larger body (docs/benchmarks.md).
        middleware=[
            Middleware(AuthThrottle, throttle=deps.throttle),
            Middleware(GZipMiddleware, minimum_size=500, compresslevel=1),
        ],
        exception_handlers=exception_handlers(deps.marketplaces),
        lifespan=lifespan_of(deps.background),
    )


def marketplace_call(deps: AppDeps, metrics: Metrics) -> Call:
    async def call(
        market: Marketplace, path: str, body: bytes | BodyError, credentials: list[str | None], started: float
    ) -> Answer:
        """One marketplace call: answered, logged, counted (both routes use it). It never
        raises: the log line and the counter record the status the caller is sent."""
        if isinstance(body, BodyError):
            answer = Answer(*market.envelope(body.status, str(body)), "unknown")
        elif deps.store.write_error is not None:
            # Nothing can be issued or finished while writes fail: advertise nothing.
            answer = Answer(*market.envelope(503, StoreUnavailable.answer), "unknown")
        else:
            try:
                answer = await market.handle(path, body, credentials)
            except StoreUnavailable as problem:  # the plug-ins answer it themselves; a new one may not
                answer = Answer(*market.envelope(503, unavailable_text(problem)), "unknown")
            except Exception:
                # Never a traceback on the wire; the log has it.
                log.exception("%s %s failed", market.name, path[:80] or "call")
                answer = Answer(*market.envelope(500, "internal error"), "unknown")
        log_call(market.name, path or answer.call, answer.request, answer.status, answer.payload, started)
        if deps.calls is not None and answer.status == 200:
            deps.calls.saw(market.name)
        seconds = time.perf_counter() - started
        metrics.observe(market.name, answer.call, answer.status, answer.payload, seconds)
        return answer

    return call


def marketplace_endpoint(market: Marketplace, call: Call, max_body: int) -> Endpoint:
    # Reached only when the raw route (http/fastpath.py) passes a request on; kept so
    # that the marketplace paths stay declared routes (405s, the console's route list).
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        body: bytes | BodyError
        try:
            body = await read_body(request, max_body)
        except BodyError as problem:
            body = problem
        credentials = [bearer(request), request.query_params.get("apikey")]
        path = request.path_params.get("endpoint", "")
        answer = await call(market, path, body, credentials, started)
        return json_response(answer.status, answer.payload)

    return endpoint


def intake_endpoint(deps: AppDeps) -> Endpoint:
    async def intake_sms(request: Request) -> Response:
        try:
            body = await read_body(request, deps.max_body_bytes)
        except BodyError as problem:
            return json_response(problem.status, {"error": str(problem)})
        status, payload = await deps.intake.handle(body, bearer(request))
        return json_response(status, payload)

    return intake_sms


def probe_routes(deps: AppDeps) -> list[BaseRoute]:
    """/healthz, /readyz and /metrics: what a supervisor and a scraper ask."""

    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            revision = await deps.store.schema_revision()
        except Exception as problem:
            return json_response(503, {"status": "unavailable", "error": str(problem)})
        if deps.store.write_error is not None:
            return json_response(503, {"status": "unavailable", "error": deps.store.write_error})
        if deps.expected_revision is not None and revision != deps.expected_revision:
            return json_response(
                503,
                {
                    "status": "unavailable",
                    "error": f"schema at {revision}, needs {deps.expected_revision}",
                },
            )
        return json_response(200, {"status": "ready", "schema": revision})

    async def metrics_endpoint(request: Request) -> Response:
        refused = metrics_refusal(request, deps.metrics_token)
        if refused is not None:
            return refused
        # Off the loop: the farm gauges read the database while they render.
        body = await run_in_threadpool(generate_latest, deps.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


def exception_handlers(marketplaces: Sequence[Marketplace]) -> dict[Any, ExceptionHandler]:
    """JSON errors everywhere; on a marketplace's paths, in that marketplace's envelope."""
    roots = {m.name: [p.split("/{", 1)[0] for p in m.paths] for m in marketplaces}

    def owner(request: Request) -> Marketplace | None:
        """The marketplace whose paths the request is on: its errors use its envelope."""
        path = request.url.path
        for market in marketplaces:
            if any(path == root or path.startswith(root + "/") for root in roots[market.name]):
                return market
        return None

    def error_response(request: Request, status: int, message: str) -> Response:
        market = owner(request)
        if market is None:
            return json_response(status, {"error": message})
        return json_response(*market.envelope(status, message))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(request, exc.status_code, message)

    async def unavailable(request: Request, exc: Exception) -> Response:
        # Answer at once: the marketplace's deadline is 10 s and it will ask again;
        # hardware keeps an SMS it was not told was stored.
        assert isinstance(exc, StoreUnavailable)
        return error_response(request, 503, unavailable_text(exc))

    async def server_error(request: Request, exc: Exception) -> Response:
        # Never a traceback on the wire; the log has it (Starlette logs unhandled errors).
        return error_response(request, 500, "internal error")

    return {HTTPException: http_error, StoreUnavailable: unavailable, 500: server_error}


def lifespan_of(
    background: Sequence[Callable[[], AbstractAsyncContextManager[None]]],
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Start the background tasks with the app, stop them in reverse order with it."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        managers = [start() for start in background]
        for manager in managers:
            await manager.__aenter__()
        try:
            yield
        finally:
            for manager in reversed(managers):
                await manager.__aexit__(None, None, None)

    return lifespan
