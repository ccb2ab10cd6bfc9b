"""A simulated Onlinesim marketplace that checks the partner it buys from (spec 5-8).

It does what Onlinesim does: polls GET_SERVICES (and the rent variant), orders activations
and rents for a mix of countries, operators and services it learned from those answers,
receives PUSH_SMS on loopback, and finishes each operation the way clients end them: sold
shortly after the code arrives, cancelled when none comes, now and then refunded, rents
ended with their total. FINISH is resent when the answer is slow or lost, and sometimes on
purpose, because the real marketplace does both.

While doing so it checks the partner against what gets a farm blocked or costs it money:
over-reported counts, numbers issued twice, ignored exclusions, duplicate or stray pushes,
malformed payloads, slow answers, FINISH answers other than SUCCESS. Time is accelerated by
`speed`: every simulated delay is divided by it; the answer deadlines are not.

Everything runs on loopback and every loop is bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp
import msgspec
from aiohttp import web

from simgate.simulator import texts
from simgate.simulator.farm import SimCard
from simgate.simulator.report import Latencies, Report

log = logging.getLogger("simgate.simulator.marketplace")

JSON = "application/json; charset=utf-8"
USER_AGENT = "simgate-simulator/onlinesim"
FINAL_ANSWERS = frozenset({"SUCCESS", "NO_OPERATION", "IGNORED", "BAD_SERVICE"})
"""Push answers after which a partner must never send the same SMS again (spec 5.4)."""

DEFAULT_SERVICE_MIX: tuple[tuple[str, float], ...] = (
    ("telegram", 10.0),
    ("whatsapp", 8.0),
    ("vkcom", 5.0),
    ("google", 4.0),
    ("openai", 3.0),
    ("instagram", 3.0),
    ("facebook", 2.0),
    ("tiktok", 2.0),
    ("avito", 2.0),
    ("ok", 1.5),
    ("uber", 1.0),
    ("ozon", 1.0),
)
PRICES_RUB: dict[str, float] = {
    "telegram": 28, "whatsapp": 32, "vkcom": 14, "google": 16, "openai": 38, "instagram": 9,
    "facebook": 10, "tiktok": 7, "avito": 18, "ok": 6, "uber": 12, "ozon": 11,
}  # fmt: skip
COUNTRY_FACTOR: dict[str, float] = {"russia": 1.0, "kazakhstan": 0.6, "germany": 1.7, "poland": 1.3}

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

Kind = Literal["activation", "rent"]


@dataclass(frozen=True)
class MarketplaceConfig:
    server_url: str
    """simgate's base URL, e.g. http://127.0.0.1:8080 (the /onlinesim paths are added)."""
    key: str
    push_host: str = "127.0.0.1"
    push_port: int = 0
    """0: any free port (see MarketplaceSimulator.push_url once started)."""
    speed: float = 1.0
    # Simulated seconds (divided by speed).
    poll_interval: float = 20.0
    """GET_SERVICES cadence: Onlinesim documents 2 minutes, SMSHUB 10-20 s."""
    rent_poll_interval: float = 30.0
    activation_rate: float = 0.5
    """Activations ordered per simulated second (a Poisson process)."""
    rent_rate: float = 0.02
    patience: tuple[float, float] = (120.0, 600.0)
    """How long a client waits for the code before cancelling (status 4); at most 15 min."""
    read_delay: tuple[float, float] = (2.0, 20.0)
    """From the code's arrival to the client closing the operation as sold."""
    rent_guard: float = 20 * 60.0
    """No SMS within 20 minutes of a rent's start: Onlinesim cancels it (spec 6.2)."""
    rent_duration: tuple[float, float] = (1800.0, 7200.0)
    """Compressed: real rents last days; here 30-120 simulated minutes, ended early at drain."""
    finish_retry: float = 5.0
    services: tuple[tuple[str, float], ...] = DEFAULT_SERVICE_MIX
    tail_weight: float = 0.2
    """Weight of each advertised service outside `services`: the long tail of buyers."""
    countries: tuple[str, ...] = ()
    """Only these countries (empty: every advertised one)."""
    p_any_operator: float = 0.6
    p_exception: float = 0.1
    p_refund: float = 0.05
    p_not_taken: float = 0.01
    p_omit_finish_sum: float = 0.3
    p_finish_lost: float = 0.03
    """The first FINISH is cut off before its answer is read, and then resent."""
    p_finish_repeat: float = 0.05
    """A confirmed FINISH sent again on purpose: it must be answered SUCCESS again."""
    p_push_failure: float = 0.02
    """A first push answered 500, so the partner must retry it (and only it)."""
    p_gzip: float = 0.1
    p_single_url: float = 0.1
    p_key_placement: tuple[float, float] = (0.1, 0.1)
    """Probability of the key only in the body, and only in the Bearer header (else both)."""
    # Real seconds.
    deadline: float = 10.0
    slow: float = 1.0
    crossed_grace: float = 2.0
    """A push this soon after our FINISH crossed it on the wire: not the partner's fault."""
    max_open: int = 5000
    max_operations: int = 1_000_000
    max_finish_attempts: int = 6
    max_pushes_kept: int = 200_000
    seed: int | None = None


class OperationEvent(msgspec.Struct, frozen=True):
    """What the SIM bank learns about an operation (in process, or POSTed to its control port)."""

    event: Literal["opened", "closed"]
    id: int
    phone: str
    kind: str
    service: str | None = None
    rent_seconds: float | None = None
    """Real seconds the rent is planned to last (SMS should come before it ends)."""


class OperationListener(Protocol):
    def operation_event(self, event: OperationEvent) -> None: ...


@dataclass
class Push:
    at: float
    rent_path: bool
    op_id: int | None
    sms_id: object
    phone: str
    sender: str
    text: str
    answer: str


@dataclass
class MarketOp:
    id: int
    kind: Kind
    country: str
    operator: str
    service: str | None
    phone: str
    offered_kopecks: int
    requested_at: float
    issued_at: float
    rent_total_kopecks: int = 0
    finish_sent_at: float | None = None
    closed_at: float | None = None
    status: int | None = None
    code_at: float | None = None
    code_event: asyncio.Event = field(default_factory=asyncio.Event)
    pushes: int = 0

    @property
    def held(self) -> bool:
        """Issued and not yet finished by us: the partner must treat the number as busy."""
        return self.finish_sent_at is None


@dataclass
class Snapshot:
    """One GET_SERVICES answer: counts keyed (country, operator, service-or-'rent')."""

    started: float
    answered: float
    counts: dict[tuple[str, str, str], int]
    consumed_at_start: Counter[str]


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


class MarketplaceSimulator:
    """Use as `async with MarketplaceSimulator(config) as market:`; then `run`, `close_all`, `finalize`."""

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        farm: Sequence[SimCard] | None = None,
        listeners: Iterable[OperationListener] = (),
        report: Report | None = None,
    ) -> None:
        if config.speed <= 0:
            raise ValueError("speed must be > 0")
        self.config = config
        self.rng = random.Random(config.seed)
        self.report = report or Report(title="marketplace", speed=config.speed)
        self.report.speed = config.speed
        self.listeners = list(listeners)
        self.farm: dict[str, SimCard] | None = (
            {card.phone: card for card in farm} if farm is not None else None
        )
        self.ops: dict[int, MarketOp] = {}
        self.held: dict[str, MarketOp] = {}
        self.history: dict[str, list[MarketOp]] = {}
        self.pushes: list[Push] = []
        self.final_answers: dict[tuple[object, str], str] = {}
        """(operation id, or phone when unknown; text) -> the first final answer to that push."""
        self._sold: dict[tuple[str, str], float] = {}
        self._snap: dict[str, Snapshot] = {}
        self._remaining: dict[str, dict[tuple[str, str, str], int]] = {}
        self._consumed: Counter[str] = Counter()
        self._inflight: Counter[str] = Counter()
        self._unknown_outcomes = 0
        self._known_prefixes: dict[str, list[str]] = {}
        self._rent_plan: dict[int, float] = {}
        self._life: set[asyncio.Task[None]] = set()
        self._ordering = False
        self._closing = asyncio.Event()
        self.push_event = asyncio.Event()
        """Set on every push received (for whoever waits for pushes to settle)."""
        self._orders = 0
        self._started = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.report.prepare(
            [
                "counts_not_over_reported", "counts_within_farm", "any_is_total",
                "numbers_offered_again", "no_number_issued_twice", "activation_ids_unique",
                "exclusions_honoured", "issued_matches_order", "answers_well_formed",
                "finish_answered_success", "answers_within_deadline", "answers_fast",
                "pushes_well_formed", "no_duplicate_push", "no_push_for_closed_or_unknown",
            ]
        )  # fmt: skip
        for name in ("counts_within_farm", "numbers_offered_again", "issued_matches_order"):
            self.report.check(name).active = self.farm is not None

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> MarketplaceSimulator:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=128),
            timeout=aiohttp.ClientTimeout(total=self.config.deadline),
        )
        app = web.Application(client_max_size=1_048_576)
        app.router.add_post("/v1/PUSH_SMS", self._push_activation)
        app.router.add_post("/v1/PUSH_SMS_RENT", self._push_rent)
        app.router.add_post("/pushSmsRent", self._push_rent)
        app.router.add_route("*", "/{tail:.*}", self._push_elsewhere)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.push_host, self.config.push_port)
        await site.start()
        addresses = self._runner.addresses
        self._port = int(addresses[0][1]) if addresses else self.config.push_port
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._ordering = False
        self._closing.set()
        for task in list(self._life):
            task.cancel()
        await asyncio.gather(*self._life, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @property
    def push_url(self) -> str:
        """What simgate needs as SIMGATE_ONLINESIM_PUSH_URL."""
        return f"http://{self.config.push_host}:{self._port}"

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _sim(self, seconds: float) -> float:
        return max(0.0, seconds / self.config.speed)

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self._sim(self.rng.uniform(*bounds))

    @property
    def open_count(self) -> int:
        return len(self._life)

    # ------------------------------------------------------------------ running

    async def run(self, duration: float | None, stop: asyncio.Event | None = None) -> None:
        """Poll and order until `duration` real seconds pass or `stop` is set."""
        self._started = time.monotonic()
        self._ordering = True
        await self.poll("getServices")
        await self.poll("getServicesRent")
        loops = [
            asyncio.create_task(self._poll_loop("getServices", self.config.poll_interval)),
            asyncio.create_task(self._poll_loop("getServicesRent", self.config.rent_poll_interval)),
            asyncio.create_task(self._arrivals(self.config.activation_rate, "activation")),
            asyncio.create_task(self._arrivals(self.config.rent_rate, "rent")),
        ]
        waiter = asyncio.create_task((stop or asyncio.Event()).wait())
        try:
            await asyncio.wait([waiter], timeout=duration)
        finally:
            self._ordering = False
            for task in (waiter, *loops):
                task.cancel()
            await asyncio.gather(waiter, *loops, return_exceptions=True)

    def stop_ordering(self) -> None:
        self._ordering = False

    async def close_all(self, grace: float = 30.0) -> None:
        """End every open operation now (clients leave at the end of the run) and wait."""
        self._ordering = False
        self._closing.set()
        if self._life:
            _, pending = await asyncio.wait(set(self._life), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _poll_loop(self, endpoint: str, interval: float) -> None:
        while self._ordering:
            await asyncio.sleep(max(0.05, self._sim(interval)))
            if self._ordering:
                await self.poll(endpoint)

    async def _arrivals(self, rate: float, kind: Kind) -> None:
        if rate <= 0:
            return
        while self._ordering and self._orders < self.config.max_operations:
            await asyncio.sleep(self.rng.expovariate(rate * self.config.speed))
            if not self._ordering:
                return
            if len(self._life) >= self.config.max_open:
                self.report.counts["order.capped"] += 1
                continue
            self._orders += 1
            self._spawn(self._operation(kind))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._life.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._life.discard(task)
        # One broken operation must not end the run, but it must not pass unnoticed either.
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated operation failed", exc_info=task.exception())
            self.report.counts["simulator.errors"] += 1

    # ------------------------------------------------------------------ HTTP

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
        data = _encode(body)
        if self.rng.random() < cfg.p_gzip:
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
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
        if not measure:
            return result
        self.report.latencies.add(endpoint, seconds)
        deadline = self.report.check("answers_within_deadline")
        fast = self.report.check("answers_fast")
        if error == "timeout":
            deadline.fail(f"{endpoint}: no answer within {limit or cfg.deadline:g} s")
        else:
            deadline.ok()
            if seconds > cfg.slow:
                fast.fail(f"{endpoint}: answered in {seconds:.2f} s")
            else:
                fast.ok()
        return result

    def _shape(self, ok: bool, example: str) -> None:
        check = self.report.check("answers_well_formed")
        if ok:
            check.ok()
        else:
            check.fail(example)

    # ------------------------------------------------------------------ GET_SERVICES

    async def poll(self, endpoint: str) -> Snapshot | None:
        payload = {"action": "GET_SERVICES", "key": self.config.key}
        started = time.monotonic()
        consumed = Counter(self._consumed)
        result = await self.call(endpoint, payload)
        answered = time.monotonic()
        self.report.counts["services.polls"] += 1
        counts = self._parse_services(endpoint, result)
        if counts is None:
            return None
        snapshot = Snapshot(started, answered, counts, consumed)
        self._snap[endpoint] = snapshot
        self._remaining[endpoint] = dict(counts)
        self._check_any(endpoint, counts)
        if self.farm is not None:
            self._check_farm(snapshot, rent=endpoint == "getServicesRent")
        return snapshot

    def _parse_services(self, endpoint: str, result: CallResult) -> dict[tuple[str, str, str], int] | None:
        if result.error is not None:
            if result.error != "timeout":
                self._shape(False, f"{endpoint}: {result.error}")
            return None
        body = result.body
        if result.status != 200 or body is None or result.word != "SUCCESS":
            self._shape(False, f"{endpoint}: HTTP {result.status} {str(body)[:120]}")
            return None
        countries = body.get("countryList")
        if not isinstance(countries, list):
            self._shape(False, f"{endpoint}: countryList is not a list")
            return None
        counts: dict[tuple[str, str, str], int] = {}
        for entry in countries:
            name = entry.get("country") if isinstance(entry, dict) else None
            operators = entry.get("operatorMap") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not isinstance(operators, dict) or "any" not in operators:
                self._shape(False, f"{endpoint}: bad countryList entry {str(entry)[:120]}")
                continue
            for operator, services in operators.items():
                if not isinstance(services, dict):
                    self._shape(False, f"{endpoint}: {name}/{operator} is not an object")
                    continue
                for service, count in services.items():
                    if type(count) is not int or count < 0:
                        self._shape(False, f"{endpoint}: {name}/{operator}/{service} = {count!r}")
                        continue
                    counts[(name, str(operator), str(service))] = count
        self._shape(True, "")
        if endpoint == "getServicesRent" and counts and not any(k[2] == "rent" for k in counts):
            self._shape(False, "getServicesRent: no `rent` counts in the operator maps")
        return counts

    def _check_any(self, endpoint: str, counts: dict[tuple[str, str, str], int]) -> None:
        totals: Counter[tuple[str, str]] = Counter()
        for (country, operator, service), count in counts.items():
            if operator != "any":
                totals[(country, service)] += count
        check = self.report.check("any_is_total")
        for (country, service), total in totals.items():
            advertised = counts.get((country, "any", service), 0)
            if advertised < total:
                check.fail(f"{endpoint}: {country}/any/{service} = {advertised} < {total} over operators")
            else:
                check.ok()

    def _check_farm(self, snapshot: Snapshot, *, rent: bool) -> None:
        """Counts may not exceed the farm's SIMs that were free throughout the call.

        Conservative on every race: an operation counts as busy only if it was issued
        before the poll started and not finished before it was answered; a sale removes a
        number from its service only once confirmed before the poll started.
        """
        assert self.farm is not None
        busy = {phone for phone, op in self.held.items() if op.issued_at <= snapshot.started}
        sold: dict[str, set[str]] = {}
        for (phone, service), when in self._sold.items():
            if when <= snapshot.started:
                sold.setdefault(service, set()).add(phone)
        groups: dict[tuple[str, str], set[str]] = {}
        rentable: dict[tuple[str, str], set[str]] = {}
        for card in self.farm.values():
            if not card.enabled:
                continue
            for operator in {card.operator or "any", "any"}:
                groups.setdefault((card.country, operator), set()).add(card.phone)
                if card.rentable:
                    rentable.setdefault((card.country, operator), set()).add(card.phone)
        check = self.report.check("counts_within_farm")
        for (country, operator, service), advertised in snapshot.counts.items():
            if service == "rent":
                free = rentable.get((country, operator), set()) - busy
            else:
                free = groups.get((country, operator), set()) - busy - sold.get(service, set())
            if advertised > len(free):
                check.fail(
                    f"{country}/{operator}/{service}: advertised {advertised}, the farm had {len(free)} free"
                )
            else:
                check.ok()

    # ------------------------------------------------------------------ ordering

    def _choose(self, kind: Kind) -> tuple[str, str, str] | None:
        """(country, operator, service) with stock left in the latest snapshot, or None."""
        endpoint = "getServicesRent" if kind == "rent" else "getServices"
        remaining = self._remaining.get(endpoint)
        if not remaining:
            return None
        wanted = {"rent": 1.0} if kind == "rent" else dict(self.config.services)
        tail = 0.0 if kind == "rent" else self.config.tail_weight
        options: list[tuple[str, str]] = []
        weights: list[float] = []
        for (country, operator, service), count in remaining.items():
            if operator != "any" or count <= 0:
                continue
            if self.config.countries and country not in self.config.countries:
                continue
            weight = wanted.get(service, 0.0 if service == "rent" else tail)
            if weight > 0:
                options.append((country, service))
                weights.append(weight * min(count, 50))
        if not options:
            return None
        country, service = self.rng.choices(options, weights)[0]
        operator = "any"
        if self.rng.random() >= self.config.p_any_operator:
            specific = [
                (op, n)
                for (c, op, s), n in remaining.items()
                if c == country and s == service and op != "any" and n > 0
            ]
            if specific:
                operator = self.rng.choices([op for op, _ in specific], [n for _, n in specific])[0]
        advertised = remaining[(country, operator, service)]
        remaining[(country, operator, service)] = advertised - 1
        if operator != "any":
            remaining[(country, "any", service)] -= 1
        return country, operator, service

    def _price(self, country: str, service: str) -> float:
        base = PRICES_RUB.get(service, 15.0) * COUNTRY_FACTOR.get(country, 1.0)
        return round(min(60.0, max(5.0, base * self.rng.uniform(0.8, 1.2))), 2)

    def _exceptions(self, country: str) -> list[int | str] | None:
        if self.rng.random() >= self.config.p_exception:
            return None
        known = self._known_prefixes.get(country, [])
        prefixes: list[str] = []
        for _ in range(self.rng.randint(1, 3)):
            if known:
                phone = self.rng.choice(known)
                prefixes.append(phone[: self.rng.randint(4, 7)])
        if not prefixes:
            return None
        # Onlinesim sends integers, SMSHUB strings: a partner must take both (spec 8.3).
        as_int = self.rng.random() < 0.6
        return [int(p) if as_int else p for p in prefixes]

    async def _operation(self, kind: Kind) -> None:
        choice = self._choose(kind)
        if choice is None:
            self.report.counts["order.skipped"] += 1
            return
        country, operator, service = choice
        rent = kind == "rent"
        endpoint = "getNumberRent" if rent else "getNumber"
        snapshot = self._snap.get("getServicesRent" if rent else "getServices")
        offered = (
            round(self.rng.uniform(30, 150), 2) if rent else self._price(country, service)
        )  # a rent's `sum` is the daily price here; its FINISH carries the total
        exceptions = self._exceptions(country)
        payload: dict[str, Any] = {
            "action": "GET_NUMBER",
            "country": country,
            "operator": operator,
            "service": service,
            "sum": offered,
            "key": self.config.key,
        }
        if exceptions is not None:
            payload["exceptionPhoneSet"] = exceptions
        requested = time.monotonic()
        self._inflight[country] += 1
        self.report.counts["order.sent"] += 1
        try:
            result = await self.call(endpoint, payload)
        finally:
            self._inflight[country] -= 1
        word = result.word
        if result.error is None and result.status == 200 and word == "NO_NUMBERS":
            self.report.counts["order.no_numbers"] += 1
            self._judge_no_numbers(country, operator, service, snapshot, exceptions)
            self._shape(True, "")
            return
        self._consumed[country] += 1  # success, error or timeout: a number may be gone
        if result.error is not None or result.status != 200 or word != "SUCCESS" or result.body is None:
            self._unknown_outcomes += 1
            if result.error != "timeout":
                self._shape(
                    False, f"{endpoint}: HTTP {result.status} {result.error or str(result.body)[:120]}"
                )
            return
        number, activation_id = result.body.get("number"), result.body.get("activationId")
        good = type(number) is int and type(activation_id) is int and activation_id >= 1
        self._shape(
            good, f"{endpoint}: number={number!r} activationId={activation_id!r} (JSON integers expected)"
        )
        if not good:
            self._unknown_outcomes += 1
            if not (isinstance(number, int | str) and isinstance(activation_id, int | str)):
                return
        phone, op_id = str(number), int(str(activation_id))
        op = MarketOp(
            id=op_id, kind=kind, country=country, operator=operator,
            service=None if rent else service, phone=phone,
            offered_kopecks=round(offered * 100), requested_at=requested, issued_at=time.monotonic(),
        )  # fmt: skip
        if not self._register(op, exceptions):
            return
        await (self._rent_life(op) if rent else self._activation_life(op))

    def _judge_no_numbers(
        self,
        country: str,
        operator: str,
        service: str,
        snapshot: Snapshot | None,
        exceptions: list[int | str] | None,
    ) -> None:
        """Over-reporting (spec 5.1): NO_NUMBERS where the last count promised a number.

        Every GET_NUMBER in the same country since the poll started (or still in flight)
        may have taken the advertised number, so only a count larger than all of them
        proves the lie; an order with exclusions proves nothing.
        """
        check = self.report.check("counts_not_over_reported")
        if snapshot is None or exceptions:
            check.note("NO_NUMBERS with exclusions or no count")
            return
        advertised = snapshot.counts.get((country, operator, service), 0)
        consumed = self._consumed[country] - snapshot.consumed_at_start[country] + self._inflight[country]
        left = advertised - consumed
        if left > 0:
            age = time.monotonic() - snapshot.answered
            check.fail(
                f"{country}/{operator}/{service}: advertised {advertised}, NO_NUMBERS {age:.2f} s later "
                f"with {consumed} competing order(s)"
            )
        else:
            check.ok()
            check.note("NO_NUMBERS after the stock was taken by other orders")

    def _register(self, op: MarketOp, exceptions: list[int | str] | None) -> bool:
        """Record an issued number and check it; False if it cannot be tracked."""
        report = self.report
        ids = report.check("activation_ids_unique")
        if op.id in self.ops:
            ids.fail(f"activationId {op.id} issued again ({op.phone}; first {self.ops[op.id].phone})")
            return False
        ids.ok()
        twice = report.check("no_number_issued_twice")
        other = self.held.get(op.phone)
        if other is not None:
            twice.fail(f"{op.phone} issued as {op.id} while {other.id} is open")
        else:
            twice.ok()
        prefixes = [str(p) for p in exceptions or ()]
        excluded = report.check("exclusions_honoured")
        if prefixes:
            hit = next((p for p in prefixes if op.phone.startswith(p)), None)
            if hit is not None:
                excluded.fail(f"{op.phone} issued although exceptionPhoneSet has {hit}")
            else:
                excluded.ok()
        self._check_match(op)
        self.ops[op.id] = op
        self.held[op.phone] = op
        self.history.setdefault(op.phone, []).append(op)
        known = self._known_prefixes.setdefault(op.country, [])
        if len(known) < 200:
            known.append(op.phone)
        report.counts[f"{op.kind}.opened"] += 1
        report.counts[f"{op.kind}.open"] += 1
        rent_seconds = None
        if op.kind == "rent":
            rent_seconds = self._uniform(self.config.rent_duration)
            op.rent_total_kopecks = round(self.rng.uniform(100, 2000) * 100)
            self._rent_plan[op.id] = rent_seconds
        self._emit(OperationEvent("opened", op.id, op.phone, op.kind, op.service, rent_seconds))
        return True

    def _check_match(self, op: MarketOp) -> None:
        check = self.report.check("issued_matches_order")
        if self.farm is None:
            return
        card = self.farm.get(op.phone)
        problem = None
        if card is None:
            problem = f"{op.phone} is not a SIM of the farm"
        elif card.country != op.country:
            problem = f"{op.phone} is in {card.country}, ordered {op.country}"
        elif op.operator != "any" and card.operator != op.operator:
            problem = f"{op.phone} is {card.operator or 'unknown'}, ordered {op.operator}"
        elif op.kind == "rent" and not card.rentable:
            problem = f"{op.phone} rented although its rent flag is 0"
        elif not card.enabled:
            problem = f"{op.phone} issued although disabled"
        if problem:
            check.fail(problem)
        else:
            check.ok()

    def _emit(self, event: OperationEvent) -> None:
        for listener in self.listeners:
            try:
                listener.operation_event(event)
            except Exception:
                log.exception("operation listener failed")

    # ------------------------------------------------------------------ operation lives

    async def _wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for `event` up to `seconds`, or until close_all; True if the event is set."""
        if event.is_set():
            return True
        waits = [asyncio.create_task(event.wait()), asyncio.create_task(self._closing.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return event.is_set()

    async def _activation_life(self, op: MarketOp) -> None:
        patience = min(self._uniform(self.config.patience), self._sim(15 * 60.0))
        if await self._wait(op.code_event, patience):
            await self._wait(asyncio.Event(), self._uniform(self.config.read_delay))
            roll = self.rng.random()
            if roll < self.config.p_not_taken:
                status = 1
            elif roll < self.config.p_not_taken + self.config.p_refund:
                status = 5
            else:
                status = 3
        else:
            status = 4
        with_sum = status == 3 and self.rng.random() >= self.config.p_omit_finish_sum
        await self._finish(op, status, op.offered_kopecks if with_sum else None)

    async def _rent_life(self, op: MarketOp) -> None:
        planned = self._rent_plan.pop(op.id, self._uniform(self.config.rent_duration))
        if not await self._wait(op.code_event, self._sim(self.config.rent_guard)):
            # The 20-minute guard: no SMS, Onlinesim cancels and refunds the client (spec 6.2).
            await self._finish(op, 4, 0)
            return
        await self._wait(asyncio.Event(), max(0.0, op.issued_at + planned - time.monotonic()))
        await self._finish(op, 3, op.rent_total_kopecks)

    async def _finish(self, op: MarketOp, status: int, kopecks: int | None) -> None:
        rent = op.kind == "rent"
        endpoint = "finishActivationRent" if rent else "finishActivation"
        payload: dict[str, Any] = {
            "action": "FINISH_ACTIVATION",
            "activationId": op.id,
            "status": status,
            "key": self.config.key,
        }
        if kopecks is not None:
            payload["sum"] = kopecks / 100
        if rent:
            payload["service"] = "RENT" if self.rng.random() < 0.2 else "rent"
        op.finish_sent_at = time.monotonic()
        if self.held.get(op.phone) is op:
            del self.held[op.phone]
        self._emit(OperationEvent("closed", op.id, op.phone, op.kind, op.service))
        check = self.report.check("finish_answered_success")
        lost = self.rng.random() < self.config.p_finish_lost
        confirmed = False
        for attempt in range(self.config.max_finish_attempts):
            self.report.counts["finish.sent"] += 1
            cut = lost and attempt == 0
            result = await self.call(endpoint, payload, limit=0.002 if cut else None, measure=not cut)
            if cut and result.error == "timeout":
                self.report.counts["finish.resent"] += 1
                continue
            if result.error is None and result.status == 200 and result.word == "SUCCESS":
                check.ok()
                confirmed = True
                break
            if result.error == "timeout":
                self.report.counts["finish.resent"] += 1
            else:
                detail = result.error or f"HTTP {result.status} {str(result.body)[:100]}"
                check.fail(f"FINISH {op.id} status {status}: {detail}")
            await asyncio.sleep(max(0.05, self._sim(self.config.finish_retry)))
        if not confirmed:
            check.fail(f"FINISH {op.id}: not confirmed after {self.config.max_finish_attempts} attempts")
        op.closed_at = time.monotonic()
        op.status = status
        counts = self.report.counts
        counts[f"{op.kind}.open"] -= 1
        counts[f"{op.kind}.finished.{status}"] += 1
        if status == 3 and confirmed:
            self.report.earnings_kopecks += op.rent_total_kopecks if rent else op.offered_kopecks
            if op.service is not None:
                self._sold[(op.phone, op.service)] = op.closed_at
        if confirmed and self.rng.random() < self.config.p_finish_repeat:
            # Onlinesim resends FINISH; the partner must answer SUCCESS again (spec 5.3).
            counts["finish.repeated"] += 1
            again = await self.call(endpoint, payload)
            if again.error is None and again.status == 200 and again.word == "SUCCESS":
                check.ok()
            elif again.error != "timeout":
                detail = again.error or f"HTTP {again.status} {str(again.body)[:100]}"
                check.fail(f"repeated FINISH {op.id}: {detail}")

    # ------------------------------------------------------------------ PUSH_SMS

    async def _push_activation(self, request: web.Request) -> web.Response:
        return await self._push(request, rent_path=False)

    async def _push_rent(self, request: web.Request) -> web.Response:
        return await self._push(request, rent_path=True)

    async def _push_elsewhere(self, request: web.Request) -> web.Response:
        self.report.check("pushes_well_formed").fail(f"{request.method} {request.path}: not a push endpoint")
        return _answer(404, "ERROR", "no such endpoint")

    async def _push(self, request: web.Request, *, rent_path: bool) -> web.Response:
        arrived = time.monotonic()
        counts = self.report.counts
        counts["push.received"] += 1
        raw = await request.read()
        payload, problems = validate_push(raw, request.headers, self.config.key, rent_path=rent_path)
        well_formed = self.report.check("pushes_well_formed")
        if payload is None or problems:
            well_formed.fail(f"{'rent ' if rent_path else ''}push: {'; '.join(problems)} | {raw[:160]!r}")
            counts["push.malformed"] += 1
            return _answer(400, "ERROR", "; ".join(problems))
        phone, text, sender = str(payload["phone"]), str(payload["text"]), str(payload["phoneFrom"])
        sms_id = payload.get("smsId")
        op = self._operation_for(sms_id, phone)
        if op is not None and (op.kind == "rent") != rent_path:
            well_formed.fail(
                f"push for {op.kind} {op.id} sent to the {'rent' if rent_path else 'activation'} URL"
            )
            return _answer(400, "ERROR", "wrong endpoint for this operation")
        well_formed.ok()
        key: tuple[object, str] = (op.id if op is not None else phone, text)
        duplicate = self.report.check("no_duplicate_push")
        first = self.final_answers.get(key)
        if first is not None:
            duplicate.fail(f"{op.id if op else phone}: {text[:40]!r} pushed again after {first}")
            answer = first
        else:
            duplicate.ok()
            answer = self._answer_for(op, sender, text)
            if answer == "RETRY":
                counts["push.failed_on_purpose"] += 1
            else:
                self.final_answers[key] = answer
        stray = self.report.check("no_push_for_closed_or_unknown")
        if op is None:
            stray.fail(f"push for {phone} (smsId {sms_id}): no operation of ours")
        elif first is None:
            stray.ok()
        if op is not None:
            op.pushes += 1
            if answer == "SUCCESS" and op.code_at is None:
                op.code_at = arrived
                op.code_event.set()
        if len(self.pushes) < self.config.max_pushes_kept:
            self.pushes.append(
                Push(arrived, rent_path, op.id if op else None, sms_id, phone, sender, text, answer)
            )
        if answer != "RETRY":
            counts[f"push.{answer.lower()}"] += 1
        self.push_event.set()
        if answer == "RETRY":
            return _answer(500, "ERROR", "temporarily unavailable")
        return _answer(200, answer)

    def _operation_for(self, sms_id: object, phone: str) -> MarketOp | None:
        if type(sms_id) is int:
            op = self.ops.get(sms_id)
            if op is not None and op.phone == phone:
                return op
        held = self.held.get(phone)
        if held is not None:
            return held
        past = self.history.get(phone)
        return past[-1] if past else None

    def _answer_for(self, op: MarketOp | None, sender: str, text: str) -> str:
        if op is None or not op.held:
            return "NO_OPERATION"
        if self.rng.random() < self.config.p_push_failure:
            return "RETRY"
        if op.kind == "rent":
            return "BAD_SERVICE" if sender.strip().lower() in texts.BLOCKED_SENDERS else "SUCCESS"
        assert op.service is not None
        return "SUCCESS" if texts.belongs_to(op.service, sender, text) else "IGNORED"

    # ------------------------------------------------------------------ the verdict

    async def final_poll(self) -> None:
        """After close_all: every number not sold for a service is offered for it again."""
        check = self.report.check("numbers_offered_again")
        snapshot = await self.poll("getServices")
        if self.farm is None or snapshot is None:
            return
        if self.held or self._unknown_outcomes:
            check.note("skipped: some operations' state is unknown")
            return
        wanted = {service for service, _ in self.config.services}
        expected: Counter[tuple[str, str, str]] = Counter()
        for card in self.farm.values():
            if not card.enabled:
                continue
            for operator in {card.operator or "any", "any"}:
                for service in wanted:
                    if (card.phone, service) not in self._sold:
                        expected[(card.country, operator, service)] += 1
        for key, count in expected.items():
            advertised = snapshot.counts.get(key, 0)
            if advertised < count:
                check.fail(f"{'/'.join(key)}: {advertised} offered, {count} free")
            else:
                check.ok()

    def finalize(self, crossed: Callable[[Push, MarketOp], bool | None] | None = None) -> Report:
        """Judge pushes that came after our FINISH; `crossed` (from the SIM bank's ledger)
        says whether the SMS reached the partner before the FINISH did (None: unknown)."""
        check = self.report.check("no_push_for_closed_or_unknown")
        for push in self.pushes:
            op = self.ops.get(push.op_id) if push.op_id is not None else None
            if op is None or op.finish_sent_at is None or push.at < op.finish_sent_at:
                continue
            verdict = crossed(push, op) if crossed is not None else None
            if verdict is None:
                verdict = push.at - op.finish_sent_at <= self.config.crossed_grace
            if verdict:
                check.note("push crossed our FINISH on the wire")
            else:
                check.fail(
                    f"push for {op.id} ({push.text[:30]!r}) {push.at - op.finish_sent_at:.2f} s after FINISH"
                )
        self.report.real_seconds = self.elapsed()
        return self.report


def _answer(status: int, word: str, error: str | None = None) -> web.Response:
    body: dict[str, str] = {"status": word}
    if error:
        body["error"] = error
    return web.Response(status=status, body=_encode(body), content_type="application/json", charset="utf-8")


def validate_push(
    raw: bytes, headers: Mapping[str, str], key: str, *, rent_path: bool
) -> tuple[dict[str, Any] | None, list[str]]:
    """The PUSH_SMS payload of spec 5.4/6.4, strictly: what a partner must send."""
    problems: list[str] = []
    content_type = str(headers.get("Content-Type", ""))
    if "application/json" not in content_type.lower():
        problems.append(f"Content-Type {content_type!r}")
    if not headers.get("User-Agent"):
        problems.append("no User-Agent")
    authorization = headers.get("Authorization")
    if authorization is not None and authorization != f"Bearer {key}":
        problems.append("wrong Authorization header")
    try:
        payload = _decode(raw)
    except msgspec.DecodeError:
        return None, [*problems, "body is not JSON"]
    if not isinstance(payload, dict):
        return None, [*problems, "body is not a JSON object"]
    if payload.get("action") != "PUSH_SMS":
        problems.append(f"action {payload.get('action')!r}")
    if payload.get("key") != key:
        problems.append("wrong key" if "key" in payload else "missing key")
    sms_id = payload.get("smsId")
    if type(sms_id) is not int or sms_id < 1:
        problems.append(f"smsId {sms_id!r} is not an integer >= 1")
    phone = payload.get("phone")
    if not isinstance(phone, str):
        problems.append(f"phone {phone!r} is not a string" if "phone" in payload else "missing phone")
    elif not (phone.isascii() and phone.isdigit() and 8 <= len(phone) <= 15):
        problems.append(f"phone {phone!r} is not digits with the country code")
    for name in ("phoneFrom", "text"):
        value = payload.get(name)
        if not isinstance(value, str) or not value:
            problems.append(
                f"{name} {value!r} is not a non-empty string" if name in payload else f"missing {name}"
            )
    service = payload.get("service")
    is_rent = isinstance(service, str) and service.lower() == "rent"
    if rent_path and not is_rent:
        problems.append(f"service {service!r} on the rent URL (want 'rent')")
    if not rent_path and is_rent:
        problems.append("a rent push on the activation URL")
    return payload, problems


# ---------------------------------------------------------------------- load generator


@dataclass
class LoadResult:
    target_rate: float
    concurrency: int
    seconds: float = 0.0
    started: int = 0
    pairs: int = 0
    """GET_NUMBER answered SUCCESS and its FINISH answered SUCCESS."""
    no_numbers: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: Latencies = field(default_factory=Latencies)

    @property
    def achieved_rate(self) -> float:
        """Completed GET_NUMBER calls (issued or NO_NUMBERS) per second."""
        return (self.pairs + self.no_numbers) / self.seconds if self.seconds > 0 else 0.0

    def fail(self, message: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = message

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "started": self.started,
            "pairs": self.pairs,
            "no_numbers": self.no_numbers,
            "errors": self.errors,
            "first_error": self.first_error,
            "latency": {call: self.latencies.summary(call) for call in self.latencies.calls()},
        }


async def run_load(
    server_url: str,
    key: str,
    *,
    rate: float,
    concurrency: int,
    duration: float,
    max_requests: int = 1_000_000,
    services: Sequence[str] = ("telegram", "whatsapp", "vkcom", "google"),
    services_every: int = 20,
    seed: int | None = None,
) -> LoadResult:
    """The marketplace as a load generator: GET_NUMBER + FINISH (cancel) pairs at `rate`/s.

    Open loop, bounded: a new pair starts every 1/rate s while fewer than `concurrency` are
    in flight (so a slow server shows as a lower achieved rate, not as a pile-up), for at
    most `duration` seconds and `max_requests` pairs; one call in `services_every` is a
    GET_SERVICES. Cancelled pairs (status 4) give their numbers back, so the farm never
    runs dry however long the run.
    """
    if rate <= 0 or concurrency < 1 or duration <= 0:
        raise ValueError("rate, concurrency and duration must be positive")
    rng = random.Random(seed)
    result = LoadResult(target_rate=rate, concurrency=concurrency)
    headers = {"Content-Type": JSON, "User-Agent": USER_AGENT, "Authorization": f"Bearer {key}"}
    base = server_url.rstrip("/") + "/onlinesim/"
    limit = asyncio.Semaphore(concurrency)

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency + 4),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as session:

        async def post(call: str, payload: dict[str, Any]) -> dict[str, Any] | None:
            started = time.monotonic()
            try:
                async with session.post(base + call, data=_encode(payload), headers=headers) as answer:
                    body = await answer.read()
                    status = answer.status
            except (TimeoutError, aiohttp.ClientError, OSError) as problem:
                result.fail(f"{call}: {type(problem).__name__} {problem}"[:200])
                return None
            result.latencies.add(call, time.monotonic() - started)
            try:
                decoded = _decode(body)
            except msgspec.DecodeError:
                decoded = None
            if status != 200 or not isinstance(decoded, dict):
                result.fail(f"{call}: HTTP {status} {body[:120]!r}")
                return None
            return decoded

        stock = await post("getServices", {"action": "GET_SERVICES", "key": key})
        targets: list[tuple[str, str]] = []
        for entry in (stock or {}).get("countryList", []):
            anyop = entry.get("operatorMap", {}).get("any", {}) if isinstance(entry, dict) else {}
            targets += [(entry["country"], s) for s in services if anyop.get(s, 0) > 0]
        if not targets:
            result.fail("nothing advertised for the requested services")
            return result

        async def pair(index: int) -> None:
            try:
                if services_every and index % services_every == services_every - 1:
                    await post("getServices", {"action": "GET_SERVICES", "key": key})
                    return
                country, service = rng.choice(targets)
                order = {"action": "GET_NUMBER", "country": country, "operator": "any",
                         "service": service, "sum": 10, "key": key}  # fmt: skip
                issued = await post("getNumber", order)
                if issued is None:
                    return
                if issued.get("status") == "NO_NUMBERS":
                    result.no_numbers += 1
                    return
                if issued.get("status") != "SUCCESS":
                    result.fail(f"getNumber: {issued}")
                    return
                finish = {"action": "FINISH_ACTIVATION", "activationId": issued.get("activationId"),
                          "status": 4, "key": key}  # fmt: skip
                done = await post("finishActivation", finish)
                if done is not None and done.get("status") == "SUCCESS":
                    result.pairs += 1
                elif done is not None:
                    result.fail(f"finishActivation: {done}")
            finally:
                limit.release()

        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        end = started + duration
        for index in range(max_requests):
            due = started + index / rate
            now = time.monotonic()
            if due >= end or now >= end:
                break
            if due > now:
                await asyncio.sleep(due - now)
            try:
                await asyncio.wait_for(limit.acquire(), timeout=max(0.0, end - time.monotonic()))
            except TimeoutError:
                break
            result.started += 1
            task = asyncio.create_task(pair(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=15)
        result.seconds = time.monotonic() - started
        for task in tasks:
            task.cancel()
    return result
