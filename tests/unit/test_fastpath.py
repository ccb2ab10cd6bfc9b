"""The marketplaces' raw route: which requests it answers, and which it leaves to Starlette."""

from __future__ import annotations

import asyncio
import gzip as stdlib_gzip
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from simgate.domain.throttle import Throttle
from simgate.http import fastpath
from simgate.http.body import BodyError
from simgate.http.fastpath import GZIP_MINIMUM, IntakeRoute, MarketplaceRoutes
from simgate.marketplaces.base import Answer, Marketplace
from simgate.storage.ports import StoreUnavailable


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


def intake_front(outcome: tuple[int, dict[str, object]] | Exception, throttle: Throttle) -> IntakeRoute:
    async def handle(body: bytes, bearer: str | None) -> tuple[int, dict[str, object]]:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def starlette(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['method']} {scope['path']} reached Starlette")

    return IntakeRoute(starlette, handle, throttle, max_body=1000, clock=lambda: 100.0)


def post_intake(front: IntakeRoute, path: str = "/intake/sms") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b'{"phone":"79001234567"}', "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": path, "client": ("10.0.0.9", 5000),
        "headers": [(b"authorization", b"Bearer token-1")],
    }  # fmt: skip
    asyncio.run(front(scope, receive, send))
    return sent


def test_intake_posts_are_answered_ahead_of_starlette_and_the_rest_goes_on() -> None:
    front = intake_front((202, {"id": 1, "operation_id": 2, "duplicate": False}), Throttle())
    sent = post_intake(front)
    assert sent[0]["status"] == 202
    assert json.loads(sent[1]["body"]) == {"id": 1, "operation_id": 2, "duplicate": False}
    passed: list[str] = []

    async def starlette(scope: Scope, receive: Receive, send: Send) -> None:
        passed.append(f"{scope['method']} {scope['path']}")

    front.app = starlette
    post_intake(front, "/intake/sms/")
    assert passed == ["POST /intake/sms/"]


def test_intake_401s_count_against_the_address_and_a_throttled_one_gets_429_unread() -> None:
    throttle = Throttle(free=1, first=30.0)
    front = intake_front((401, {"error": "wrong or missing bearer token"}), throttle)
    assert post_intake(front)[0]["status"] == 401
    assert post_intake(front)[0]["status"] == 401
    refused = post_intake(front)
    assert refused[0]["status"] == 429
    headers = dict(refused[0]["headers"])
    assert headers[b"retry-after"] == b"30"
    assert "try again in 30 s" in json.loads(refused[1]["body"])["error"]


def test_intake_failures_are_503_or_500_without_a_traceback() -> None:
    unavailable = post_intake(intake_front(StoreUnavailable("disk full"), Throttle()))
    assert unavailable[0]["status"] == 503
    assert "nothing was changed" in json.loads(unavailable[1]["body"])["error"]
    broken = post_intake(intake_front(RuntimeError("secret detail"), Throttle()))
    assert broken[0]["status"] == 500
    assert json.loads(broken[1]["body"]) == {"error": "internal error"}


def test_a_big_answer_sent_again_is_compressed_once(monkeypatch: Any) -> None:
    """An idle farm's GET_SERVICES is the same bytes poll after poll: gzip them once."""
    compressed: list[int] = []

    def counting(body: bytes) -> bytes:
        compressed.append(len(body))
        return stdlib_gzip.compress(body, 1)

    monkeypatch.setattr(fastpath, "gzip", counting)
    big = {"status": "SUCCESS", "countryList": [{"country": f"c{i}", "n": i} for i in range(4000)]}
    other = {**big, "status": "ALSO"}
    front = routes(Answer(200, big, "getServices"), [])
    bodies = [request(front, "POST", "/onlinesim/getServices", b"gzip")[1]["body"] for _ in range(3)]
    assert len(json.dumps(big)) >= fastpath.GZIP_IN_THREAD
    assert len(compressed) == 1
    assert all(json.loads(stdlib_gzip.decompress(b)) == big for b in bodies)
    # Another answer is compressed for itself, never given the kept one.
    changed = request(routes(Answer(200, other, "getServices"), []), "POST", "/onlinesim", b"gzip")
    assert json.loads(stdlib_gzip.decompress(changed[1]["body"])) == other
    assert len(compressed) == 2
