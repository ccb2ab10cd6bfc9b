"""simgate sells a SIM farm's numbers on SMS-activation marketplaces. Every command exits 0 on
success, else prints a one-line reason on standard error."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from simgate import __version__, catalogue
from simgate.commands import farm, history, owner, why
from simgate.commands.common import (
    DatabaseMissing,
    State,
    console,
    database,
    describe_error,
    fail,
    require_database,
    require_folder,
    settings,
)
from simgate.commands.intake import intake_app
from simgate.commands.simulate import app as simulate_app
from simgate.commands.tables import Drop, Field, Shorten, Step, one_line, print_table, when
from simgate.commands.usage import OneLineErrors
from simgate.config import SettingsError

if TYPE_CHECKING:  # the storage layer loads only for commands that open a database
    from simgate.domain.model import Number
    from simgate.domain.types import NumberId
    from simgate.storage.ports import UnitOfWork

__all__ = ["app", "fail", "main", "settings"]

app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    help=__doc__,
    pretty_exceptions_enable=False,
)
numbers_app = typer.Typer(no_args_is_help=True, help="The SIM inventory.")
app.add_typer(numbers_app, name="numbers")
sms_app = typer.Typer(no_args_is_help=True, help="SMS received from the hardware.")
app.add_typer(sms_app, name="sms")
outbox_app = typer.Typer(no_args_is_help=True, help="Pushes to the marketplace.")
app.add_typer(outbox_app, name="outbox")
app.add_typer(simulate_app, name="simulate")
app.add_typer(intake_app, name="intake")
operations_app = typer.Typer(no_args_is_help=True, help="Activations and rents.")
app.add_typer(operations_app, name="operations")
for action in (farm.enable, farm.disable, farm.block, farm.unblock):
    numbers_app.command()(action)
numbers_app.command()(why.why)
operations_app.command("list")(farm.operations_list)
IMPORT_BATCH = 1000


def _version(value: bool) -> None:
    if value:
        typer.echo(f"simgate {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML settings file (or SIMGATE_CONFIG)")
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    """simgate: sell your SIM farm's numbers through Onlinesim."""
    State.config = config


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Leave delivery to `simgate worker`")
    ] = False,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Do not apply pending migrations")] = False,
) -> None:
    """Serve every HTTP endpoint (and run the delivery worker unless --no-worker)."""
    from simgate.server import PortUnavailable, run_server
    from simgate.storage.schema import SchemaMismatch

    if not 1 <= port <= 65535:
        fail("--port must be between 1 and 65535", 2)

    current = settings()  # outside the try: its own failure already printed its one line
    try:
        require_folder(current)
        run_server(current, host=host, port=port, worker=not no_worker, migrate=not no_migrate)
    except SettingsError as error:
        fail(str(error), 2)
    except (SchemaMismatch, PortUnavailable, DatabaseMissing) as error:
        fail(str(error))
    except Exception as error:
        fail(describe_error(error))


@app.command()
def worker() -> None:
    """Run only the delivery worker (any number beside `serve --no-worker`)."""
    from simgate.server import run_worker
    from simgate.storage.schema import SchemaMismatch

    current = settings()
    try:
        require_database(current)  # a worker never creates one: it has nothing to push there
        run_worker(current)
    except SettingsError as error:
        fail(str(error), 2)
    except (SchemaMismatch, DatabaseMissing) as error:
        fail(str(error))
    except Exception as error:
        fail(describe_error(error))


@app.command()
def migrate() -> None:
    """Apply pending database migrations and exit."""
    from simgate.bootstrap import migrate_schema

    current = settings()
    try:
        require_folder(current)
    except DatabaseMissing as error:
        fail(str(error))
    before, after = migrate_schema(current)
    if before == after:
        typer.echo(f"schema is current (revision {after})")
    else:
        typer.echo(f"migrated {before or 'empty database'} -> {after}")


@numbers_app.command("import")
def numbers_import(
    file: Annotated[
        Path, typer.Argument(help="CSV with phone,country,operator (and port,rent,enabled,marketplaces)")
    ],
) -> None:
    """Load or update SIM numbers from a CSV file (idempotent)."""
    from rich.progress import Progress

    from simgate.services.inventory import (
        ImportReport,
        InventoryFileError,
        import_numbers,
        parse_csv,
    )

    current = settings()
    try:
        with file.open(encoding="utf-8-sig", newline="") as stream:
            specs, rejected = parse_csv(stream)
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror}")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text (save it from the spreadsheet as CSV UTF-8)")
    except InventoryFileError as error:
        fail(f"{file}: {error}")
    total = ImportReport(rejected=rejected)
    quiet = len(specs) < 5 * IMPORT_BATCH
    with database(current) as store, Progress(console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task("importing", total=len(specs))
        for start in range(0, len(specs), IMPORT_BATCH):
            batch = specs[start : start + IMPORT_BATCH]
            now = time.time()
            report = store.run(lambda uow, b=batch, t=now: import_numbers(uow, b, t))  # type: ignore[misc]
            total.added += report.added
            total.updated += report.updated
            total.unchanged += report.unchanged
            bar.advance(task, len(batch))
    console.print(
        f"added {total.added}, updated {total.updated}, unchanged {total.unchanged}, "
        f"rejected {len(total.rejected)}"
    )
    for rejection in total.rejected:
        # One line per row even in a pipe or cron mail: scripts grep these.
        typer.echo(f"  line {rejection.line}: {rejection.phone or '(no phone)'}: {rejection.reason}")
    if total.rejected:
        fail(f"{len(total.rejected)} row(s) rejected; the others were loaded")


def open_marketplaces(uow: UnitOfWork, numbers: Sequence[Number]) -> dict[NumberId, str]:
    """The marketplace of each busy SIM's open operation (a few rows: only the busy ones)."""
    found: dict[NumberId, str] = {}
    for n in numbers:
        operation = uow.operations.get(n.open_operation_id) if n.open_operation_id else None
        if operation is not None:
            found[n.id] = operation.marketplace
    return found


@numbers_app.command("list")
def numbers_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout")] = False,
    state: Annotated[str | None, typer.Option(help="free, busy, offline or disabled")] = None,
) -> None:
    """List numbers with their state."""
    from simgate.domain.read_model import NumberQuery

    if state is not None and state not in ("free", "busy", "offline", "disabled"):
        fail("--state must be free, busy, offline or disabled", 2)
    with database() as store:
        # A read snapshot beside a running `serve`: never its write lock.
        def listing(uow: UnitOfWork) -> tuple[list[Number], dict[NumberId, str]]:
            found = uow.numbers.search(NumberQuery(state=state, limit=10**9))
            return found, open_marketplaces(uow, found)

        rows, sold_on = store.run_read(listing)
    if as_json:
        payload = [
            {
                "phone": n.phone, "country": n.country, "operator": n.operator, "port": n.port,
                "rent": n.rentable, "enabled": n.enabled, "file_enabled": n.file_enabled,
                "operator_enabled": n.operator_enabled, "online": n.online, "state": n.state,
                "operation_id": n.open_operation_id,
                "operation_marketplace": sold_on.get(n.id),
                "lane": n.lane, "lane_target": n.lane_target, "marketplaces": sorted(n.marketplaces),
            }
            for n in rows
        ]  # fmt: skip
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    # Both switches: "csv" is the file's `enabled` column, "owner" the dashboard's and
    # `simgate numbers disable`'s, which no re-import changes. A busy SIM's lane is the
    # marketplace of its open operation (it was issued from there), shown beside its id.
    columns: dict[str, list[str]] = {
        "phone": [n.phone for n in rows],
        "country": [n.country for n in rows],
        "operator": [n.operator or "-" for n in rows],
        "port": [n.port or "-" for n in rows],
        "rent": ["yes" if n.rentable else "no" for n in rows],
        "csv": ["on" if n.file_enabled else "off" for n in rows],
        "owner": ["on" if n.operator_enabled else "off" for n in rows],
        "state": [n.state for n in rows],
        "operation": [
            f"{n.open_operation_id} ({sold_on.get(n.id, '?')})" if n.open_operation_id else "" for n in rows
        ],
        "lane": [(n.lane or "-") + (f" -> {n.lane_target}" if n.lane_target else "") for n in rows],
        "sells on": ["|".join(sorted(n.marketplaces)) or "all" for n in rows],
    }
    # Narrow terminals lose the rarely read columns first; phone, state and operation stay.
    narrow = ("sells on", "csv", "owner", "rent", "lane", "port", "operator", "country")
    print_table(
        console,
        [Field(header, cells) for header, cells in columns.items()],
        [Drop(header) for header in narrow],
        footer=f"{len(rows)} number(s)",
    )


@sms_app.command("list")
def sms_list(
    unrouted: Annotated[bool, typer.Option("--unrouted", help="Only SMS with no open operation")] = False,
    pending: Annotated[bool, typer.Option("--pending", help="Only SMS waiting to be pushed")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Only rejected or given-up pushes")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout")] = False,
) -> None:
    """List received SMS with their routing and push state."""
    from simgate.domain.read_model import MessageQuery

    if unrouted + pending + failed > 1:
        fail("choose one of --unrouted, --pending, --failed", 2)
    state = "pending" if pending else "failed" if failed else None
    with database() as store:
        rows = store.run_read(
            lambda uow: uow.messages.search(
                MessageQuery(routed=False if unrouted else None, delivery_state=state, limit=limit)
            )
        )
    records = [
        {
            "id": m.id, "phone": m.phone, "sender": m.sender, "text": m.text,
            "received_at": m.received_at, "stored_at": m.stored_at,
            "operation_id": m.operation_id, "message_id": m.message_key,
            "delivery_id": d.id if d else None, "push": d.state.value if d else "unrouted",
            "attempts": d.attempts if d else 0, "reason": d.reason if d else None,
        }
        for m, d in rows
    ]  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(records, ensure_ascii=False) + "\n")
        return
    # The push id comes first: it is the one `outbox retry` and the dashboard's Pushes page use.
    now = time.time()
    stored = [float(str(r["stored_at"] or 0)) for r in records]
    reasons = [one_line(str(r["reason"] or "")) for r in records]
    fields = [
        Field("push", [str(r["delivery_id"] or "-") for r in records]),
        Field(
            "stored",
            [when(at, seconds=True) for at in stored],
            short=("stored", [when(at, now=now) for at in stored]),
        ),
        Field("phone", [str(r["phone"]) for r in records]),
        Field("sender", [one_line(str(r["sender"])) for r in records], wants=12),
        Field("text", [one_line(str(r["text"])) for r in records], wants=32),
        Field("operation", [str(r["operation_id"] or "-") for r in records]),
        Field("state", [str(r["push"]) for r in records]),
        Field("tries", [str(r["attempts"]) for r in records], justify="right"),
    ]
    if any(reasons):  # only failed pushes have one
        fields.append(Field("reason", reasons, wants=12))
    # Narrow: a shorter time, then the columns least read; the text is cut last, with "…".
    narrow: list[Step] = [Drop("tries"), Shorten("stored"), Drop("sender"), Drop("stored")]
    print_table(console, fields, narrow, footer=f"{len(records)} SMS")


@outbox_app.command("retry")
def outbox_retry(
    delivery_id: Annotated[
        int, typer.Argument(help="The push id (`simgate sms list`, the dashboard's Pushes page)")
    ],
) -> None:
    """Push a rejected or given-up SMS again. Acknowledged pushes are never resent."""
    from simgate.services.outbox import RetryRefused, retry_delivery

    with database() as store:
        try:
            message = store.run(lambda uow: retry_delivery(uow, delivery_id, time.time()))
        except RetryRefused as error:
            fail(f"{error} (the push id is the first column of `simgate sms list`)")
    # Name the SMS, so a mistyped id is seen at once rather than when a buyer complains.
    typer.echo(
        f"push {delivery_id} is pending again: SMS {message.id} from {message.sender} "
        f"to {message.phone}: {_shorten(one_line(message.text), 40)!r}"
    )


def _shorten(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


@app.command()
def countries() -> None:
    """Country names accepted in the inventory CSV."""
    for name, region in sorted(catalogue.countries().items()):
        typer.echo(f"{name}\t{region}")


@app.command()
def services() -> None:
    """Service names each enabled marketplace offers (after SIMGATE_<NAME>_SERVICES)."""
    loaded = settings()
    for market in [m for m, table in loaded.marketplaces.items() if table.enabled] or loaded.marketplaces:
        for name in loaded.marketplaces[market].offered:
            typer.echo(f"{market}\t{name}")


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (else Ctrl-C)")] = None,
    numbers: Annotated[int, typer.Option(help="Virtual SIMs in the demo farm")] = 200,
    speed: Annotated[float, typer.Option(help="Time acceleration of the simulated world")] = 10.0,
    port: Annotated[
        int | None, typer.Option(help="Port of the demo server (default: 8080, or a free one if taken)")
    ] = None,
    marketplaces: Annotated[
        str, typer.Option(help="Simulated marketplaces selling the one farm, e.g. onlinesim,smshub")
    ] = "onlinesim",
) -> None:
    """Run the whole system on a fresh SQLite file: server, SIM bank, marketplaces."""
    from simgate.demo import run_demo

    status = run_demo(duration=duration, numbers=numbers, speed=speed, port=port, marketplaces=marketplaces)
    if status:
        raise typer.Exit(status)


# After serve, worker and migrate: --help lists the commands in the order they are learnt.
for command in (owner.status, owner.earnings, owner.backup, owner.check, history.prune):
    app.command()(command)


def main() -> None:
    """CONTRACT.md: non-zero with a one-line reason on standard error, never a traceback
    (SIMGATE_DEBUG=1 shows it, for developers)."""
    import os

    try:
        app(prog_name="simgate")
    except Exception as error:
        if os.environ.get("SIMGATE_DEBUG") == "1":
            raise
        typer.echo(f"simgate: {describe_error(error)}", err=True)
        raise SystemExit(1) from None
