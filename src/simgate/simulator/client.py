"""The simulated marketplace's HTTP client: how it calls the partner, and how fast it expects
an answer.

Onlinesim's published documents disagree on where the key goes and whether one URL serves
every action, and the marketplace gzips some requests; the client varies all of that at
random, so a partner that accepts only one variant fails the run. The agent protocol has one
URL per marketplace, the key in the body, and gzip "in each request". Every answer's latency
is recorded, and held against the 10 s deadline (an error) and 1 s (a warning).
"""

from __future__ import annotations

import gzip
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from simgate.simulator.findings import Report
from simgate.simulator.market_config import MarketplaceConfig

JSON = "application/json; charset=utf-8"
USER_AGENT = "simgate-simulator/onlinesim"
KEEPALIVE_SECONDS = 3.0
"""Idle pooled connections are dropped before simgate's 5-s keep-alive closes them: reusing one
the server is closing races its FIN (ServerDisconnectedError), which no partner check is about."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass
class CallResult:
    status: int | None
    body: dict[str, Any] | None
    seconds: float
    error: str | None = None

    @property
    def word(self) -> str | None:
        value = (self.body or {}).get("status")
        return value if isinstance(value, str) else None


class MarketClient:
    """Calls simgate the way one marketplace does; `request` says how."""

    def __init__(self, config: MarketplaceConfig, rng: random.Random, report: Report) -> None:
        self.config = config
        self.rng = rng
        self.report = report
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=128, keepalive_timeout=KEEPALIVE_SECONDS),
            timeout=aiohttp.ClientTimeout(total=self.config.deadline),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def request(self, endpoint: str, payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
        """(path, body, headers) of one call."""
        raise NotImplementedError

    def _gzip(self, data: bytes, headers: dict[str, str]) -> bytes:
        if self.rng.random() < self.config.p_gzip:
            headers["Content-Encoding"] = "gzip"
            return gzip.compress(data)
        return data

    async def call(
        self,
        endpoint: str,
        payload: dict[str, Any],
        *,
        limit: float | None = None,
        measure: bool = True,
    ) -> CallResult:
        """POST one marketplace call; records its latency and the deadline checks."""
        assert self._session is not None, "use the simulator as an async context manager"
        cfg = self.config
        path, data, headers = self.request(endpoint, payload)
        started = time.monotonic()
        status: int | None = None
        raw = b""
        error: str | None = None
        try:
            async with self._session.post(
                cfg.server_url.rstrip("/") + path,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=limit or cfg.deadline),
            ) as answer:
                status = answer.status
                raw = await answer.read()
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as problem:
            error = f"{type(problem).__name__}: {problem}"[:200]
        seconds = time.monotonic() - started
        result = CallResult(status, None, seconds, error)
        if error is None:
            try:
                decoded = _decode(raw)
            except msgspec.DecodeError:
                decoded = None
            if isinstance(decoded, dict):
                result.body = decoded
        if measure:
            self._judge_time(endpoint, result, limit or cfg.deadline)
        return result

    def _judge_time(self, endpoint: str, result: CallResult, deadline_seconds: float) -> None:
        self.report.latencies.add(endpoint, result.seconds)
        deadline = self.report.check("answers_within_deadline")
        fast = self.report.check("answers_fast")
        if result.error == "timeout":
            deadline.fail(f"{endpoint}: no answer within {deadline_seconds:g} s")
        else:
            deadline.ok()
            if result.seconds > self.config.slow:
                fast.fail(f"{endpoint}: answered in {result.seconds:.2f} s")
            else:
                fast.ok()


class OnlinesimClient(MarketClient):
    """`/onlinesim/<endpoint>`, or `/onlinesim` dispatched on `action`; the key in the body,
    the Bearer header or both, with the documented variants drawn at random."""

    def request(self, endpoint: str, payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
        cfg = self.config
        body = dict(payload)
        headers = {"Content-Type": JSON, "User-Agent": USER_AGENT}
        roll = self.rng.random()
        body_only, header_only = cfg.p_key_placement
        if roll >= body_only:
            headers["Authorization"] = f"Bearer {cfg.key}"
        if body_only <= roll < body_only + header_only:
            body.pop("key", None)
        path = f"/onlinesim/{endpoint}"
        if self.rng.random() < cfg.p_single_url:
            path = "/onlinesim"  # one URL for all: dispatched on action (+ service rent)
            if endpoint.endswith("Rent"):
                body["service"] = "rent"
            if endpoint == "getServicesRent":
                body["service"] = "rent"
        return path, self._gzip(_encode(body), headers), headers


class AgentClient(MarketClient):
    """`POST /<marketplace>` dispatched on `action`, the key in the body (spec smshub-agent 2-3)."""

    def request(self, endpoint: str, payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
        headers = {
            "Content-Type": JSON,
            "User-Agent": f"simgate-simulator/{self.config.marketplace}",
            "Accept-Encoding": "gzip",
        }
        return f"/{self.config.marketplace}", self._gzip(_encode(payload), headers), headers


def client_for(config: MarketplaceConfig, rng: random.Random, report: Report) -> MarketClient:
    if config.protocol == "agent":
        return AgentClient(config, rng, report)
    return OnlinesimClient(config, rng, report)
