"""The marketplaces' raw route: which requests it answers, and which it leaves to Starlette."""

from __future__ import annotations

import asyncio
import gzip as stdlib_gzip
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from simgate.http.body import BodyError
from simgate.http.fastpath import GZIP_MINIMUM, MarketplaceRoutes
from simgate.marketplaces.base import Answer, Marketplace


class Market:
    """Only what the raw route reads of a marketplace."""

    def __init__(self, name: str, paths: tuple[str, ...]) -> None:
        self.name, self.paths = name, paths

    def envelope(self, status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"status": "ERROR", "error": message}


ONLINESIM = Market("onlinesim", ("/onlinesim", "/onlinesim/{endpoint}"))
SMSHUB = Market("smshub", ("/smshub",))


def routes(answer: Answer | Exception, passed: list[str]) -> MarketplaceRoutes:
    async def call(market: Any, endpoint: str, body: bytes | BodyError, creds: Any, started: float) -> Answer:
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def starlette(scope: Scope, receive: Receive, send: Send) -> None:
        passed.append(f"{scope['method']} {scope['path']}")

    markets: list[Marketplace] = [ONLINESIM, SMSHUB]  # type: ignore[list-item]
    return MarketplaceRoutes(starlette, markets, call, max_body=1000)


def request(front: MarketplaceRoutes, method: str, path: str, accept: bytes = b"") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b'{"action":"GET_SERVICES"}', "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [(b"accept-encoding", accept)]}
    asyncio.run(front(scope, receive, send))
    return sent


def test_posts_on_marketplace_paths_are_answered_and_the_rest_goes_on_to_starlette() -> None:
    front = routes(Answer(200, {"status": "SUCCESS"}, "getNumber"), passed := [])
    assert front.route("/onlinesim") == (ONLINESIM, "")
    assert front.route("/onlinesim/getNumber") == (ONLINESIM, "getNumber")
    assert front.route("/smshub") == (SMSHUB, "")
    for path in ("/onlinesim/", "/onlinesim/getNumber/extra", "/smshub/x", "/intake/sms", "/"):
        assert front.route(path) is None, path
    sent = request(front, "POST", "/onlinesim/getNumber")
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"status": "SUCCESS"}
    request(front, "GET", "/onlinesim/getNumber")
    request(front, "POST", "/onlinesim/getNumber/extra")
    assert passed == ["GET /onlinesim/getNumber", "POST /onlinesim/getNumber/extra"]


def test_a_failing_call_is_a_500_in_the_envelope_without_a_traceback() -> None:
    sent = request(routes(RuntimeError("secret detail"), []), "POST", "/onlinesim/getNumber")
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"]) == {"status": "ERROR", "error": "internal error"}


def test_big_answers_are_gzipped_only_for_callers_that_accept_it() -> None:
    big = {"status": "SUCCESS", "countryList": ["x" * GZIP_MINIMUM]}
    front = routes(Answer(200, big, "getServices"), [])
    zipped = request(front, "POST", "/onlinesim/getServices", accept=b"gzip, deflate")
    headers = dict(zipped[0]["headers"])
    assert headers[b"content-encoding"] == b"gzip"
    assert headers[b"vary"] == b"Accept-Encoding"
    assert json.loads(stdlib_gzip.decompress(zipped[1]["body"])) == big
    assert int(headers[b"content-length"]) == len(zipped[1]["body"])
    plain = request(front, "POST", "/onlinesim/getServices")
    assert b"content-encoding" not in dict(plain[0]["headers"])
    assert json.loads(plain[1]["body"]) == big
