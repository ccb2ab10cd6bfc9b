"""A simulated SIM bank: N virtual SIMs that receive SMS and hand them to /intake/sms.

When an operation opens on one of its numbers (told in process by the marketplace
simulator, or POSTed to its control port by one in another process), the bank delivers
what a real buyer's SMS would look like, after a realistic delay: the code (Latin,
Cyrillic, emoji, sometimes a long multi-part text), now and then a second SMS or one from
another service, and for rents whatever a rented number receives. Like real gateways it
sometimes delivers the same SMS twice (same message_id), and it receives SMS on numbers
nobody bought. Every answer of the intake API is recorded and checked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from simgate.simulator import texts
from simgate.simulator.client import KEEPALIVE_SECONDS
from simgate.simulator.farm import SimCard
from simgate.simulator.findings import Report
from simgate.simulator.ledger import OperationEvent
from simgate.simulator.market_config import DEFAULT_SERVICE_MIX

log = logging.getLogger("simgate.simulator.simbank")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_decode_event = msgspec.json.Decoder(OperationEvent).decode


@dataclass(frozen=True)
class SimBankConfig:
    server_url: str
    token: str
    speed: float = 1.0
    # Simulated seconds (divided by speed).
    p_no_sms: float = 0.15
    """An activation whose code never comes: the client cancels (status 4)."""
    code_delay: tuple[float, float] = (3.0, 45.0)
    p_follow_up: float = 0.1
    follow_up_delay: tuple[float, float] = (5.0, 30.0)
    p_foreign: float = 0.05
    """An SMS from another service before the code (Onlinesim answers IGNORED)."""
    rent_p_no_sms: float = 0.15
    rent_sms: tuple[int, int] = (1, 4)
    rent_first: tuple[float, float] = (10.0, 300.0)
    rent_gap: tuple[float, float] = (30.0, 900.0)
    rent_window: float = 0.6
    """A rent's SMS come in the first part of its planned time, not as it ends."""
    stray_rate: float = 0.05
    """SMS per simulated second for numbers with no operation (operator notices, ads)."""
    traffic_rate: float = 0.0
    """Standalone: code SMS per simulated second to random SIMs, operation or not."""
    p_duplicate: float = 0.05
    duplicate_delay: tuple[float, float] = (0.5, 5.0)
    p_plus: float = 0.1
    p_no_message_id: float = 0.1
    p_no_received_at: float = 0.2
    services: tuple[str, ...] = tuple(name for name, _ in DEFAULT_SERVICE_MIX)
    # Real seconds and bounds.
    deadline: float = 10.0
    max_sms: int = 1_000_000
    max_pending: int = 20_000
    max_records: int = 500_000
    seed: int | None = None


@dataclass
class SmsRecord:
    serial: int
    phone: str
    sender: str
    text: str
    message_id: str | None
    purpose: str
    """code, follow_up, foreign, rent, stray or traffic."""
    target: int | None
    """The operation the bank meant it for (None: no operation)."""
    sent_at: float
    answered_at: float | None = None
    http_status: int | None = None
    stored_id: int | None = None
    operation_id: int | None = None
    duplicate: bool | None = None
    error: str | None = None
    resend_of: int | None = None

    @property
    def stored(self) -> bool:
        return self.error is None and self.http_status in (200, 202) and self.stored_id is not None


@dataclass
class _Plan:
    event: OperationEvent
    steps: list[tuple[float, str]] = field(default_factory=list)


class SimBank:
    """Use as `async with SimBank(config, cards) as bank:`; feed it `operation_event`s."""

    def __init__(
        self,
        config: SimBankConfig,
        cards: Sequence[SimCard],
        *,
        report: Report | None = None,
        is_idle: Callable[[str], bool] | None = None,
    ) -> None:
        if config.speed <= 0:
            raise ValueError("speed must be > 0")
        self.config = config
        self.cards = [card for card in cards if card.enabled]
        self.by_phone: dict[str, SimCard] = {card.phone: card for card in cards}
        self.rng = random.Random(config.seed)
        self.report = report or Report(title="SIM bank", speed=config.speed)
        self.report.prepare(["intake_answers"])
        self.records: list[SmsRecord] = []
        self.routed: dict[tuple[int, str], list[SmsRecord]] = {}
        """First deliveries the server routed to an operation, by (operation, text)."""
        self._is_idle = is_idle
        self._open: dict[str, int] = {}
        self._closed_at: dict[str, float] = {}
        self._texts: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._posting: set[asyncio.Task[Any]] = set()
        self._serial = 0
        self._nonce = secrets.token_hex(3)
        self._accepting = True
        self._session: aiohttp.ClientSession | None = None
        self._control: web.AppRunner | None = None

    async def __aenter__(self) -> SimBank:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=KEEPALIVE_SECONDS),
            timeout=aiohttp.ClientTimeout(total=self.config.deadline),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._control is not None:
            await self._control.cleanup()
        if self._session is not None:
            await self._session.close()

    def _sim(self, seconds: float) -> float:
        return max(0.0, seconds / self.config.speed)

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self._sim(self.rng.uniform(*bounds))

    # ------------------------------------------------------------------ operations

    def operation_event(self, event: OperationEvent) -> None:
        """The marketplace opened or closed an operation on one of our numbers."""
        if event.event == "closed":
            self._open.pop(event.phone, None)
            self._closed_at[event.phone] = time.monotonic()
            return
        self._open[event.phone] = event.id
        if not self._accepting:
            return
        plan = self._plan(event)
        if not plan.steps:
            self.report.counts["bank.silent"] += 1
            return
        if len(self._tasks) >= self.config.max_pending:
            self.report.counts["bank.dropped"] += 1
            return
        self._spawn(self._deliver(plan))

    def _plan(self, event: OperationEvent) -> _Plan:
        cfg, rng = self.config, self.rng
        plan = _Plan(event)
        if event.kind == "rent":
            if rng.random() < cfg.rent_p_no_sms:
                return plan
            window = (event.rent_seconds or self._sim(3600.0)) * cfg.rent_window
            at = self._uniform(cfg.rent_first)
            plan.steps.append((min(at, window / 2), "rent"))
            for _ in range(rng.randint(*cfg.rent_sms) - 1):
                at += self._uniform(cfg.rent_gap)
                if at >= window:
                    break
                plan.steps.append((at, "rent"))
            return plan
        if rng.random() < cfg.p_no_sms:
            return plan
        at = self._uniform(cfg.code_delay)
        if rng.random() < cfg.p_foreign:
            plan.steps.append((at * rng.random(), "foreign"))
        plan.steps.append((at, "code"))
        if rng.random() < cfg.p_follow_up:
            plan.steps.append((at + self._uniform(cfg.follow_up_delay), "follow_up"))
        plan.steps.sort()
        return plan

    async def _deliver(self, plan: _Plan) -> None:
        event = plan.event
        begun = time.monotonic()
        for at, purpose in plan.steps:
            await asyncio.sleep(max(0.0, begun + at - time.monotonic()))
            if not self._accepting:
                return
            if purpose == "rent":
                sender, text = texts.rent_message(self.rng, list(self.config.services), self._serial)
            elif purpose == "foreign":
                other = [s for s in self.config.services if s != event.service] or ["yandex"]
                sender, text = texts.verification(self.rng, self.rng.choice(other))
            else:
                sender, text = texts.verification(self.rng, event.service or "telegram")
            await self.send(event.phone, sender, text, purpose, event.id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if not self._accepting:
            work.close()
            return
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated SMS delivery failed", exc_info=task.exception())
            self.report.counts["simulator.errors"] += 1

    # ------------------------------------------------------------------ background SMS

    async def run(self, duration: float | None, stop: asyncio.Event | None = None) -> None:
        """SMS for idle numbers (and standalone traffic) until `duration` or `stop`."""
        loops = [
            asyncio.create_task(self._poisson(self.config.stray_rate, self._stray)),
            asyncio.create_task(self._poisson(self.config.traffic_rate, self._traffic)),
        ]
        waiter = asyncio.create_task((stop or asyncio.Event()).wait())
        try:
            await asyncio.wait([waiter], timeout=duration)
        finally:
            for task in (waiter, *loops):
                task.cancel()
            await asyncio.gather(waiter, *loops, return_exceptions=True)

    async def _poisson(self, rate: float, action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if rate <= 0 or not self.cards:
            return
        while self._accepting and self._serial < self.config.max_sms:
            await asyncio.sleep(self.rng.expovariate(rate * self.config.speed))
            if self._accepting and len(self._tasks) < self.config.max_pending:
                self._spawn(action())

    def idle(self, phone: str) -> bool:
        if self._is_idle is not None:
            return self._is_idle(phone)
        closed = self._closed_at.get(phone)
        return phone not in self._open and (closed is None or time.monotonic() - closed > 2.0)

    async def _stray(self) -> None:
        for _ in range(10):
            card = self.rng.choice(self.cards)
            if self.idle(card.phone):
                sender, text = texts.stray_message(self.rng, card.operator, self._serial)
                await self.send(card.phone, sender, text, "stray", None)
                return

    async def _traffic(self) -> None:
        card = self.rng.choice(self.cards)
        sender, text = texts.verification(self.rng, self.rng.choice(self.config.services))
        await self.send(card.phone, sender, text, "traffic", self._open.get(card.phone))

    async def stop(self) -> None:
        """No more SMS: scheduled deliveries are dropped (the world stops with the run).

        An SMS already on its way to the intake is waited for, not cut off: the server may
        have stored and routed it, and the ledger must know that.
        """
        self._accepting = False
        for task in list(self._tasks):
            if task not in self._posting:
                task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.config.deadline + 1)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ intake

    def _unique(self, phone: str, sender: str, text: str) -> str:
        """Two SMS with one text in one operation are indistinguishable at the marketplace."""
        seen = self._texts.setdefault(phone, set())
        if text in seen:
            text = f"{text} #{self._serial}"
        seen.add(text)
        return text

    async def send(
        self, phone: str, sender: str, text: str, purpose: str, target: int | None
    ) -> SmsRecord | None:
        """POST one SMS to /intake/sms and check the answer; maybe deliver it twice."""
        cfg, rng = self.config, self.rng
        if self._serial >= cfg.max_sms:
            return None
        self._serial += 1
        text = self._unique(phone, sender, text)
        payload: dict[str, Any] = {"phone": ("+" if rng.random() < cfg.p_plus else "") + phone}
        payload.update(sender=sender, text=text)
        if rng.random() >= cfg.p_no_received_at:
            # Gateways stamp with their own clock, a little behind ours.
            stamp = datetime.now(UTC) - timedelta(seconds=rng.uniform(0, 2))
            payload["received_at"] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        card = self.by_phone.get(phone)
        message_id = None
        if rng.random() >= cfg.p_no_message_id:
            port = (card.port if card and card.port else "sim").replace("/", "-")
            message_id = f"{port}-{self._nonce}-{self._serial:06d}"
            payload["message_id"] = message_id
        record = SmsRecord(self._serial, phone, sender, text, message_id, purpose, target, time.monotonic())
        await self._post(record, payload)
        counts = self.report.counts
        counts["sms.sent"] += 1
        if purpose == "stray":
            counts["sms.stray"] += 1
        if record.stored and record.operation_id is not None:
            counts["sms.routed"] += 1
            self.routed.setdefault((record.operation_id, text), []).append(record)
        elif purpose != "stray":
            # Meant for an operation that had ended when it arrived (a late follow-up): the
            # report names it, so that routed + idle + these add up to what was sent.
            counts["sms.unrouted"] += 1
        if len(self.records) < cfg.max_records:
            self.records.append(record)
        if message_id is not None and record.stored and rng.random() < cfg.p_duplicate:
            self._spawn(self._resend(record, payload))
        return record

    async def _resend(self, first: SmsRecord, payload: dict[str, Any]) -> None:
        """The gateway did not see our answer and delivers the same SMS (same message_id)."""
        await asyncio.sleep(self._uniform(self.config.duplicate_delay))
        again = SmsRecord(
            first.serial, first.phone, first.sender, first.text, first.message_id, first.purpose,
            first.target, time.monotonic(), resend_of=first.serial,
        )  # fmt: skip
        await self._post(again, payload, first=first)
        self.report.counts["sms.resent"] += 1
        if len(self.records) < self.config.max_records:
            self.records.append(again)

    async def _post(self, record: SmsRecord, payload: dict[str, Any], first: SmsRecord | None = None) -> None:
        assert self._session is not None, "use the bank as an async context manager"
        check = self.report.check("intake_answers")
        url = self.config.server_url.rstrip("/") + "/intake/sms"
        headers = {
            "Authorization": f"Bearer {self.config.token}",
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "simgate-simulator/simbank",
        }
        started = time.monotonic()
        raw = b""
        current = asyncio.current_task()
        if current is not None:
            self._posting.add(current)
        try:
            async with self._session.post(url, data=_encode(payload), headers=headers) as answer:
                record.http_status = answer.status
                raw = await answer.read()
        except TimeoutError:
            record.error = "timeout"
        except (aiohttp.ClientError, OSError) as problem:
            record.error = f"{type(problem).__name__}: {problem}"[:200]
        finally:
            self._posting.discard(current)
        record.answered_at = time.monotonic()
        self.report.latencies.add("intake", record.answered_at - started)
        if record.error is not None:
            check.fail(f"SMS {record.serial} to {record.phone}: {record.error}")
            return
        try:
            body = _decode(raw)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            check.fail(f"SMS {record.serial}: HTTP {record.http_status}, not JSON: {raw[:100]!r}")
            return
        stored_id, operation_id = body.get("id"), body.get("operation_id")
        if type(stored_id) is int:
            record.stored_id = stored_id
        if type(operation_id) is int:
            record.operation_id = operation_id
        record.duplicate = body.get("duplicate") if isinstance(body.get("duplicate"), bool) else None
        if first is None:
            if record.http_status == 202 and record.duplicate is False and record.stored_id is not None:
                check.ok()
            else:
                check.fail(f"new SMS {record.serial} to {record.phone}: HTTP {record.http_status} {body}")
        elif record.http_status == 200 and record.duplicate is True and record.stored_id == first.stored_id:
            check.ok()
        else:
            check.fail(
                f"resent SMS {record.serial} (message_id {record.message_id}): HTTP {record.http_status} "
                f"{body}, first stored as {first.stored_id}"
            )

    # ------------------------------------------------------------------ control port

    async def serve_control(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for a marketplace in another process: POST /operations with an OperationEvent."""

        async def operations(request: web.Request) -> web.Response:
            try:
                event = _decode_event(await request.read())
            except (msgspec.DecodeError, msgspec.ValidationError) as problem:
                return web.json_response({"error": str(problem)}, status=400)
            self.operation_event(event)
            return web.json_response({"status": "ok"})

        app = web.Application(client_max_size=65_536)
        app.router.add_post("/operations", operations)
        self._control = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._control.setup()
        await web.TCPSite(self._control, host, port).start()
        addresses = self._control.addresses
        return int(addresses[0][1]) if addresses else port


class RemoteBank:
    """The marketplace's side of the control port: forwards operation events over HTTP."""

    def __init__(self, url: str, max_pending: int = 1000) -> None:
        self.url = url.rstrip("/") + "/operations"
        self.max_pending = max_pending
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._posting: set[asyncio.Task[Any]] = set()
        self.failures = 0

    async def __aenter__(self) -> RemoteBank:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._session is not None:
            await self._session.close()

    def operation_event(self, event: OperationEvent) -> None:
        if self._session is None or len(self._tasks) >= self.max_pending:
            self.failures += 1
            return
        task = asyncio.create_task(self._post(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, event: OperationEvent) -> None:
        assert self._session is not None
        try:
            async with self._session.post(self.url, data=msgspec.json.encode(event)) as answer:
                await answer.read()
                if answer.status != 200:
                    self.failures += 1
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.failures += 1
