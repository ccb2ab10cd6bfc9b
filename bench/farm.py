"""Generated farms: a migrated SQLite file with numbers, some busy, offline, disabled or sold.

Everything is written through the storage ports (upsert, operations.open, mark_busy,
exclude, set_online, set_enabled) in one unit of work, so the benchmark keeps working when
the schema changes under it, and a 100,000-number farm loads in a few seconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from simgate import catalogue
from simgate.domain.model import NumberSpec, OperationKind, Order
from simgate.domain.types import CountryName, OperatorName, PhoneNumber, ServiceName
from simgate.marketplaces.onlinesim import MARKETPLACE
from simgate.services.inventory import import_numbers
from simgate.storage import schema
from simgate.storage.ports import Store, UnitOfWork
from simgate.storage.sqlite import SQLiteStore

# (country, phone prefix, total digits, operators): a farm spread over a few countries,
# the way a reseller with several GoIP racks looks. Operator '' is "unknown" (counted under
# `any` only), which the tally must handle too.
COUNTRIES: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("russia", "7928", 11, ("beeline", "megafon", "mts", "tele2", "")),
    ("kazakhstan", "7701", 11, ("kcell", "beeline", "tele2")),
    ("germany", "49151", 13, ("vodafone", "telekom", "o2")),
    ("ukraine", "38050", 12, ("kyivstar", "vodafone", "lifecell")),
    ("indonesia", "62812", 13, ("telkomsel", "indosat", "xl")),
    ("poland", "4850", 11, ("orange", "play", "plus", "tmobile")),
)

MIX_COUNTRY = (0.40, 0.15, 0.15, 0.10, 0.10, 0.10)
"""Share of the farm in each of COUNTRIES: most SIMs in one market, as farms usually are."""


@dataclass(frozen=True, slots=True)
class FarmShape:
    """How the generated numbers are spread over states; shares of the whole farm."""

    numbers: int
    busy: float = 0.15
    """In an open activation (GET_NUMBER answered, no FINISH yet)."""
    offline: float = 0.03
    disabled: float = 0.02
    sold: float = 0.40
    """Sold (FINISH status 3) for 1..max_sold_services services each."""
    max_sold_services: int = 3
    rentable: float = 0.5
    seed: int = 20261130

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def service_names(count: int) -> tuple[ServiceName, ...]:
    """The shipped catalogue, padded with synthetic names to `count` (or cut to it).

    Onlinesim knows several hundred services; the catalogue ships the popular ~60. The
    padding names only need to be distinct: GET_SERVICES treats every name alike.
    """
    names = list(catalogue.services())[:count]
    index = 0
    while len(names) < count:
        index += 1
        names.append(ServiceName(f"bench{index:03d}"))
    return tuple(names)


def popularity(services: Sequence[ServiceName]) -> list[float]:
    """Zipf-like weights: the first services of a list sell far more than the tail."""
    return [1 / (rank + 1) for rank in range(len(services))]


def generate(shape: FarmShape) -> list[NumberSpec]:
    rng = random.Random(shape.seed)
    specs: list[NumberSpec] = []
    weights = list(MIX_COUNTRY)
    counters = [0] * len(COUNTRIES)
    for _ in range(shape.numbers):
        which = rng.choices(range(len(COUNTRIES)), weights)[0]
        country, prefix, digits, operators = COUNTRIES[which]
        serial = counters[which]
        counters[which] += 1
        specs.append(
            NumberSpec(
                phone=PhoneNumber(prefix + f"{serial:0{digits - len(prefix)}d}"),
                country=CountryName(country),
                operator=OperatorName(rng.choice(operators)),
                port=f"goip{serial // 32 + 1}/{serial % 32 + 1}",
                rentable=rng.random() < shape.rentable,
            )
        )
    return specs


@dataclass(frozen=True, slots=True)
class FarmStats:
    numbers: int
    busy: int
    offline: int
    disabled: int
    sold_numbers: int
    exclusions: int
    load_seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _populate(
    uow: UnitOfWork, shape: FarmShape, specs: list[NumberSpec], services: Sequence[ServiceName]
) -> tuple[int, int, int, int, int]:
    rng = random.Random(shape.seed + 1)
    now = time.time()
    weights = popularity(services)
    import_numbers(uow, specs, now)
    busy = offline = disabled = sold = exclusions = 0
    for spec in specs:
        number = uow.numbers.get_by_phone(spec.phone)
        assert number is not None
        if rng.random() < shape.sold:
            wanted = rng.randint(1, shape.max_sold_services)
            chosen = {service for service in rng.choices(services, weights, k=wanted)}
            for service in chosen:
                uow.numbers.exclude(number.id, service, "sold", now)
            sold += 1
            exclusions += len(chosen)
        draw = rng.random()
        if draw < shape.busy:
            order = Order(
                kind=OperationKind.ACTIVATION,
                country=spec.country,
                operator=spec.operator,
                service=rng.choices(services, weights)[0],
            )
            operation = uow.operations.open(MARKETPLACE, order, number, now)
            uow.numbers.mark_busy(number.id, operation.id, now)
            busy += 1
        elif draw < shape.busy + shape.offline:
            uow.numbers.set_online(spec.phone, False, now)
            offline += 1
        elif draw < shape.busy + shape.offline + shape.disabled:
            uow.numbers.set_enabled(number.id, False, now)
            disabled += 1
    return busy, offline, disabled, sold, exclusions


def build(path: Path, shape: FarmShape, services: Sequence[ServiceName]) -> FarmStats:
    """Create (or replace) a migrated SQLite farm at `path`."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    schema.upgrade(url)
    store = SQLiteStore(str(path))
    try:
        return fill(store, shape, services)
    finally:
        store.close()


def fill(store: Store, shape: FarmShape, services: Sequence[ServiceName]) -> FarmStats:
    """Load a generated farm into an empty, migrated store (SQLite or PostgreSQL)."""
    started = time.perf_counter()
    specs = generate(shape)
    busy, offline, disabled, sold, exclusions = store.run(lambda uow: _populate(uow, shape, specs, services))
    return FarmStats(
        numbers=len(specs),
        busy=busy,
        offline=offline,
        disabled=disabled,
        sold_numbers=sold,
        exclusions=exclusions,
        load_seconds=time.perf_counter() - started,
    )
