"""Who may knock how often, and who may read /metrics.

`AuthThrottle` wraps the whole app: every 401 answered on a guarded path counts as a failed
attempt of that client address (domain/throttle.py), and an address that must wait gets a 429 at
once, before its body is read or its secret checked. Realms are counted apart, so failed
sign-ins do not slow the same address's SMS intake. Marketplace paths are not throttled: a
marketplace's key is checked per call and its calls must never wait on someone's guessing.
The client address is uvicorn's, which honours X-Forwarded-For only from FORWARDED_ALLOW_IPS.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simgate.credentials import same_secret
from simgate.domain.throttle import Throttle
from simgate.http.body import bearer

REALMS = (
    ("/login", "console"),
    ("/logout", "console"),
    ("/api/", "console"),
    ("/intake/", "intake"),
    ("/metrics", "metrics"),
)

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
JSON = "application/json; charset=utf-8"


def realm_of(path: str) -> str | None:
    for prefix, realm in REALMS:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return realm
    return None


class AuthThrottle:
    def __init__(
        self, app: ASGIApp, throttle: Throttle | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app, self.throttle, self.clock = app, throttle or Throttle(), clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        realm = realm_of(scope["path"]) if scope["type"] == "http" else None
        if realm is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        who = f"{realm}:{client[0] if client else ''}"
        wait = self.throttle.wait(who, self.clock())
        if wait > 0:
            seconds, message = too_many(wait)
            response = Response(
                msgspec.json.encode({"error": message}),
                status_code=429,
                media_type=JSON,
                headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
            )
            await response(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 401:
            self.throttle.failed(who, self.clock())


def too_many(wait: float) -> tuple[int, str]:
    """The Retry-After seconds and the message of a 429 for an address that must wait."""
    seconds = math.ceil(wait)
    return seconds, f"too many failed attempts from your address; try again in {seconds} s"


def metrics_refusal(request: Request, token: str | None) -> Response | None:
    """None when the caller may read /metrics (it shows sales and earnings); else the answer.

    With SIMGATE_METRICS_TOKEN set, its Bearer token from anywhere. Without it, only a direct
    call from this host (a local Prometheus or `curl`), never one forwarded by a proxy.
    """
    if token is not None:
        if same_secret(bearer(request) or "", token):
            return None
        return Response(
            msgspec.json.encode({"error": "missing or wrong bearer token (SIMGATE_METRICS_TOKEN)"}),
            status_code=401,
            media_type=JSON,
            headers={"WWW-Authenticate": 'Bearer realm="simgate metrics"'},
        )
    host = request.client.host if request.client else ""
    forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
    if host in LOOPBACK and not forwarded:
        return None
    return Response(
        msgspec.json.encode({"error": "set SIMGATE_METRICS_TOKEN to read /metrics from another host"}),
        status_code=403,
        media_type=JSON,
    )
