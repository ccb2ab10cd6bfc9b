"""The owner's actions on single SIMs, and the operations list: the dashboard's buttons in a shell.

Each action is the same use case the dashboard calls (services/admin.py), so a SIM disabled
here is disabled there, and survives a re-import the same way.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from simgate.commands.common import console, database, fail
from simgate.commands.tables import Drop, Field, Shorten, Step, print_table, when
from simgate.domain.errors import DomainError
from simgate.domain.read_model import BLOCKED, NumberReport, OperationQuery
from simgate.domain.types import NumberId
from simgate.storage.ports import UnitOfWork

Phone = Annotated[str, typer.Argument(help="The SIM's phone number, with the country code")]


def _number_id(uow: UnitOfWork, raw: str) -> NumberId:
    from simgate.services.phones import normalise_phone

    phone = normalise_phone(raw)  # InvalidNumber is a DomainError: one line, exit 1
    number = uow.numbers.get_by_phone(phone)
    if number is None:
        raise DomainError(f"{phone} is not in the inventory (see `simgate numbers list`)")
    return number.id


def _act(phone: str, action: str, service: str | None = None) -> NumberReport:
    from simgate.services import admin

    now = time.time()

    def work(uow: UnitOfWork) -> NumberId:
        number_id = _number_id(uow, phone)
        if action in ("enable", "disable"):
            admin.set_enabled(uow, number_id, action == "enable", now)
        elif action == "block":
            assert service is not None
            admin.block_service(uow, number_id, service, now)
        else:
            assert service is not None
            admin.unblock_service(uow, number_id, service, now)
        return number_id

    with database() as store:
        try:
            number_id = store.run(work)
            return store.run_report(lambda r: admin.number_report(r, number_id, now))
        except DomainError as error:
            fail(str(error))


def _switches(report: NumberReport) -> str:
    n = report.number
    words = [f"{n.phone}: {n.state}"]
    if not n.operator_enabled:
        words.append("switched off by the owner")
    if not n.file_enabled:
        words.append("switched off in the CSV (enabled=0)")
    return "; ".join(words)


def enable(phone: Phone) -> None:
    """Switch a SIM back on (the CSV's own `enabled` column must say 1 too)."""
    typer.echo(_switches(_act(phone, "enable")))


def disable(phone: Phone) -> None:
    """Stop selling a SIM; an open operation on it runs to its end. Re-imports keep it off."""
    typer.echo(_switches(_act(phone, "disable")))


def block(
    phone: Phone, service: Annotated[str, typer.Argument(help="Service name (`simgate services`)")]
) -> None:
    """Never offer this SIM for SERVICE activations (rent is unaffected)."""
    report = _act(phone, "block", service)
    typer.echo(f"{report.number.phone}: blocked for {', '.join(_blocked(report)) or '-'}")


def unblock(
    phone: Phone, service: Annotated[str, typer.Argument(help="A service blocked on this SIM")]
) -> None:
    """Lift a block. A service the SIM was sold for stays excluded."""
    report = _act(phone, "unblock", service)
    typer.echo(f"{report.number.phone}: blocked for {', '.join(_blocked(report)) or 'nothing'}")


def _blocked(report: NumberReport) -> list[str]:
    return sorted(e.service for e in report.exclusions if e.reason == BLOCKED)


def operations_list(
    state: Annotated[str | None, typer.Option(help="open or finished")] = None,
    kind: Annotated[str | None, typer.Option(help="activation or rent")] = None,
    phone: Annotated[str | None, typer.Option(help="Part of the phone number")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout")] = False,
) -> None:
    """List operations (activations and rents), newest first, with what each earned."""
    if state not in (None, "open", "finished"):
        fail("--state must be open or finished", 2)
    if kind not in (None, "activation", "rent"):
        fail("--kind must be activation or rent", 2)
    if not 1 <= limit <= 100_000:
        fail("--limit must be between 1 and 100000", 2)
    query = OperationQuery(kind=kind, state=state, search=phone, limit=limit)
    with database() as store:
        page = store.run_report(lambda r: r.operations(query))
    records = [
        {
            "id": r.operation.id, "marketplace": r.operation.marketplace, "kind": r.operation.kind.value,
            "phone": r.operation.phone, "service": r.operation.service, "country": r.operation.country,
            "opened_at": r.operation.opened_at, "finished_at": r.operation.finished_at,
            "status": r.status, "sms": r.sms, "earned_kopecks": int(r.earned),
        }
        for r in page.items
    ]  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(records, ensure_ascii=False) + "\n")
        return
    # A cut phone ("79284562…") cannot be copied into `numbers why`: tables.py never cuts one.
    # Money in the operation's own currency: SMSHUB may pay in USD what Onlinesim pays in RUB.
    now = time.time()
    opened = [float(str(r["opened_at"] or 0)) for r in records]
    markets = [str(r["marketplace"]) for r in records]
    fields = [
        Field("id", [str(r["id"]) for r in records]),
        Field("marketplace", markets, short=("market", markets)),
        Field("opened", [when(at) for at in opened], short=("opened", [when(at, now=now) for at in opened])),
        Field("phone", [str(r["phone"]) for r in records]),
        Field("service", [str(r["service"] or "rent") for r in records]),
        Field("status", [str(r["status"]) for r in records]),
        Field("sms", [str(r["sms"]) for r in records], justify="right"),
        Field(
            "earned",
            [f"{rubles(int(r.earned))} {r.operation.currency}" for r in page.items],
            justify="right",
        ),
    ]
    # Narrow: the time without its date, then the columns least read; never the id or phone.
    narrow: list[Step] = [
        Shorten("opened"),
        Drop("sms"),
        Shorten("marketplace"),
        Drop("opened"),
        Drop("market"),
    ]
    print_table(console, fields, narrow, footer=f"{len(records)} of {page.total} operation(s)")


def rubles(kopecks: int) -> str:
    return f"{kopecks / 100:.2f}"
