"""`simgate demo`: a fresh SQLite farm served on loopback with a generated inventory."""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from pathlib import Path

from simgate.config import load_settings
from simgate.domain.model import NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.services.inventory import import_numbers

DEMO_FARM = {
    "russia": ("7928", ["beeline", "megafon", "mts", "tele2"]),
    "germany": ("49151", ["vodafone", "telekom", "o2"]),
    "kazakhstan": ("7701", ["kcell", "beeline"]),
}


def demo_inventory(count: int, seed: int = 7) -> list[NumberSpec]:
    rng = random.Random(seed)
    specs: list[NumberSpec] = []
    countries = list(DEMO_FARM)
    for index in range(count):
        country = countries[index % len(countries)]
        prefix, operators = DEMO_FARM[country]
        digits = 11 if country != "germany" else 13
        phone = prefix + f"{index:0{digits - len(prefix)}d}"
        specs.append(
            NumberSpec(
                phone=PhoneNumber(phone),
                country=CountryName(country),
                operator=OperatorName(rng.choice(operators)),
                port=f"goip{index // 32 + 1}/{index % 32 + 1}",
                rentable=rng.random() < 0.5,
            )
        )
    return specs


def run_demo(*, duration: float | None, numbers: int, port: int) -> None:
    from simgate.bootstrap import open_store
    from simgate.server import run_server

    folder = Path("demo-data")
    folder.mkdir(exist_ok=True)
    database = folder / "simgate-demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    key = secrets.token_hex(12)
    environ = dict(os.environ)
    environ.update(SIMGATE_DATABASE_URL=f"sqlite:///{database}", SIMGATE_ONLINESIM_KEY=key)
    settings = load_settings(environ)
    from simgate.storage import schema

    schema.upgrade(settings.database_url)
    store = open_store(settings)
    store.run(lambda uow: import_numbers(uow, demo_inventory(numbers), time.time()))
    store.close()
    base = f"http://127.0.0.1:{port}/onlinesim"
    print(f"demo farm: {numbers} SIMs in {database}; partner key {key}")
    print(f'  curl -s {base}/getServices -d \'{{"action":"GET_SERVICES","key":"{key}"}}\'')
    print(
        f'  curl -s {base}/getNumber -d \'{{"action":"GET_NUMBER","country":"russia",'
        f'"operator":"any","service":"telegram","sum":12,"key":"{key}"}}\''
    )
    if duration is not None:
        threading.Timer(duration, lambda: os.kill(os.getpid(), 2)).start()
    run_server(settings, host="127.0.0.1", port=port, worker=False, migrate=False)
