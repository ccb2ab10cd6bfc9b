"""Do the kept counts make PostgreSQL claims wait on each other? (issue 14 target 4)

    python -m bench.pg_counts [--url postgresql://postgres@127.0.0.1:5432/postgres] [--seconds 5]

One scratch database at the head revision, one farm whose every SIM sits in one (lane,
country, operator): the worst case, every claim changes the same count. Threads run
GET_NUMBER + FINISH (status 4, which frees the number) through PostgresStore, as `simgate
serve` does, for a fixed time, under three versions of the trigger on `numbers`:

- `deltas`: what migration 0011 installs, an INSERT into number_count_deltas per change;
- `hot row`: the same counts kept by an UPSERT into number_counts itself (one shared row);
- `none`: the triggers disabled, i.e. no kept counts (what the claim cost before 0011).

Prints pairs/s and the units that lost a race (deadlock, serialization) and ran again.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import threading
import time
from collections import Counter

import psycopg
from alembic import command

from bench import machine
from simgate.domain.model import NumberSpec, OperationKind, Order
from simgate.domain.types import ANY_OPERATOR, CountryName, OperatorName, PhoneNumber, ServiceName
from simgate.services.inventory import import_numbers
from simgate.services.operations import finish_operation, issue_number
from simgate.storage import schema
from simgate.storage.postgres import PostgresStore


def _upsert(row: str, sign: str) -> str:
    return (
        "INSERT INTO number_counts (lane, country, operator, numbers, rentable) VALUES"
        f" (COALESCE(CASE WHEN {row}.open_operation_id IS NULL AND {row}.enabled AND {row}.online"
        f" AND {row}.lane_target IS NULL THEN {row}.lane END, ''), {row}.country, {row}.operator,"
        f" {sign}1, {sign}(CASE WHEN {row}.rentable THEN 1 ELSE 0 END))"
        " ON CONFLICT (lane, country, operator) DO UPDATE"
        " SET numbers = number_counts.numbers + excluded.numbers,"
        " rentable = number_counts.rentable + excluded.rentable;"
    )


HOT_ROW = (
    "CREATE OR REPLACE FUNCTION simgate_number_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" IF TG_OP <> 'INSERT' THEN {_upsert('OLD', '-')} END IF;"
    f" IF TG_OP <> 'DELETE' THEN {_upsert('NEW', '+')} END IF;"
    " RETURN NULL; END $$"
)
"""The counts kept in place: every claim in one group updates one row."""


ORDER = Order(OperationKind.ACTIVATION, CountryName("russia"), ANY_OPERATOR, ServiceName("telegram"))


class Races(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if "lost a race" in record.getMessage():
            self.seen[str(record.args[0] if record.args else "?")] += 1  # type: ignore[index]


def run(url: str, threads: int, seconds: float, *, counted: bool) -> tuple[float, int]:
    store = PostgresStore(url, min_size=threads, max_size=threads)
    races = Races()
    logger = logging.getLogger("simgate.postgres")
    logger.addHandler(races)
    logger.setLevel(logging.DEBUG)
    pairs = [0] * threads
    stop = time.monotonic() + seconds

    def buyer(slot: int) -> None:
        while time.monotonic() < stop:
            now = time.time()
            operation = store.run(lambda uow, t=now: issue_number(uow, "onlinesim", ORDER, t))  # type: ignore[misc]
            if operation is None:
                continue
            store.run(lambda uow, o=operation, t=now: finish_operation(uow, "onlinesim", o.id, 4, None, t))  # type: ignore[misc]
            pairs[slot] += 1

    workers = [threading.Thread(target=buyer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    logger.removeHandler(races)
    drift = store.run(lambda uow: uow.numbers.count_drift())
    store.close()
    assert drift == [] or not counted, drift
    return sum(pairs) / seconds, sum(races.seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_counts")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--numbers", type=int, default=2_000)
    args = parser.parse_args()
    name = f"simgate_bench_counts_{secrets.token_hex(3)}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = args.url.rsplit("/", 1)[0] + "/" + name
    try:
        schema.upgrade(url)
        store = PostgresStore(url, min_size=1, max_size=2)
        specs = [
            NumberSpec(PhoneNumber(f"7928{i:07d}"), CountryName("russia"), OperatorName("beeline"))
            for i in range(args.numbers)
        ]
        store.run(lambda uow: import_numbers(uow, specs, time.time()))
        store.close()
        for round_, variant in enumerate(("deltas", "hot row", "none", "deltas")):
            if round_ and variant == "deltas":
                # 0011 again: its triggers, and counts rebuilt from the numbers.
                command.downgrade(schema._config(url), "0010")
                command.upgrade(schema._config(url), "head")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    f"ALTER TABLE numbers {'DISABLE' if variant == 'none' else 'ENABLE'} TRIGGER USER"
                )
                if variant == "hot row":
                    conn.execute(HOT_ROW)
            load = machine.load_average()
            rate, raced = run(url, args.threads, args.seconds, counted=variant != "none")
            print(
                f"{variant:8s} {args.threads} threads: {rate:7.1f} pairs/s, {raced} units ran again"
                f" (load {load})",
                flush=True,
            )
    finally:
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
