"""One log line per marketplace call: what was asked, which operation, and the answer.

An ASGI middleware, so the marketplace adapters stay free of logging plumbing: it copies
(at most a few kilobytes of) the request and response bodies as they pass and logs chosen
fields only. The partner key travels in the body, the header and the query string; none of
them is ever copied into the line.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from typing import Any

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("simgate.requests")

CAPTURE = 64 * 1024
REQUEST_FIELDS = ("action", "country", "operator", "service", "activationId", "status", "sum")


STATUS = re.compile(rb'"status"\s*:\s*"([A-Z_]{1,40})"')


def _decode(body: bytes, gzipped: bool) -> dict[str, Any]:
    try:
        if gzipped:
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, CAPTURE)
        value = msgspec.json.decode(body)
    except zlib.error:
        return {}
    except msgspec.DecodeError:
        # A large GET_SERVICES answer is cut at CAPTURE bytes; its status leads it.
        found = STATUS.search(body[:200])
        return {"status": found.group(1).decode()} if found else {}
    return value if isinstance(value, dict) else {}


def _scalar(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 and " " not in text else repr(text[:40])


def describe(call: str, request: dict[str, Any], status: int, answer: dict[str, Any], ms: float) -> str:
    """`onlinesim getNumber action=GET_NUMBER country=russia service=vk -> 200 SUCCESS operation=7`"""
    asked = " ".join(
        f"{name if name != 'activationId' else 'operation'}={_scalar(request[name])}"
        for name in REQUEST_FIELDS
        if request.get(name) is not None and not isinstance(request[name], dict | list)
    )
    outcome = str(answer.get("status", "-"))
    extra = []
    if answer.get("activationId") is not None:
        extra.append(f"operation={_scalar(answer['activationId'])}")
    if answer.get("number") is not None:
        extra.append(f"number={_scalar(answer['number'])}")
    if answer.get("error"):
        extra.append(f"error={str(answer['error'])[:200]!r}")
    tail = (" " + " ".join(extra)) if extra else ""
    return f"onlinesim {call} {asked} -> {status} {outcome}{tail} ({ms:.1f} ms)".replace("  ", " ")


class MarketplaceRequestLog:
    def __init__(self, app: ASGIApp, prefix: str = "/onlinesim") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_gzip = headers.get("content-encoding", "").strip().lower() in ("gzip", "x-gzip")
        request_body = bytearray()
        response_body = bytearray()
        response: dict[str, Any] = {"status": 0, "gzip": False}

        async def receive_copy() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(request_body) < CAPTURE:
                request_body.extend(message.get("body", b"")[: CAPTURE - len(request_body)])
            return message

        async def send_copy(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"content-encoding" and b"gzip" in value.lower():
                        response["gzip"] = True
            elif message["type"] == "http.response.body" and len(response_body) < CAPTURE:
                response_body.extend(message.get("body", b"")[: CAPTURE - len(response_body)])
            await send(message)

        call = str(scope["path"])[len(self.prefix) :].strip("/")[:60] or "onlinesim"
        try:
            await self.app(scope, receive_copy, send_copy)
        except Exception:
            ms = (time.perf_counter() - started) * 1000
            asked = _decode(bytes(request_body), request_gzip)
            log.error("%s", describe(call, asked, 500, {"status": "EXCEPTION"}, ms))
            raise
        ms = (time.perf_counter() - started) * 1000
        asked = _decode(bytes(request_body), request_gzip)
        answer = _decode(bytes(response_body), bool(response["gzip"]))
        status = int(response["status"])
        level = logging.INFO if status < 500 else logging.ERROR
        log.log(level, "%s", describe(call, asked, status, answer, ms))
