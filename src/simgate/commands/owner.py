"""The commands an owner reaches for every day: status, earnings, backup, check.

They read the farm's database (commands/common.py refuses a missing one) and never change it;
`backup` copies it while `serve` keeps running.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from simgate.commands.common import (
    DatabaseMissing,
    State,
    console,
    database,
    database_label,
    describe_error,
    fail,
    hide_password,
    load,
    misspelt_variables,
    require_database,
    settings,
    sqlite_file,
)
from simgate.config import Settings, SettingsError, load_settings
from simgate.domain.alerts import GATEWAY_SILENT
from simgate.domain.read_model import GroupStats, MarketplaceStats, Stats
from simgate.domain.types import Timestamp
from simgate.storage.ports import Reports

DAY = 86400.0
NUMBER_STATES = ("free", "busy", "offline", "disabled")
BY = ("sim", "service", "marketplace")


def day_starts(days: int, now: Timestamp) -> list[Timestamp]:
    """Local midnights of the last `days` days, oldest first (mktime keeps DST days right)."""
    today = time.localtime(now)
    return [
        time.mktime((today.tm_year, today.tm_mon, today.tm_mday - back, 0, 0, 0, 0, 0, -1))
        for back in reversed(range(days))
    ]


def rubles(kopecks: int) -> str:
    return f"{kopecks / 100:.2f}"


# --- status -----------------------------------------------------------------------------------

ALERTS_LISTED = 20
"""Open alerts shown with their text, newest first; `alerts` in --json has every key."""


def farm_status(reports: Reports, now: Timestamp) -> dict[str, Any]:
    """Everything `simgate status` shows, as plain data (the --json form)."""
    outbox = reports.outbox()
    today = reports.earnings(day_starts(1, now)[0])
    open_alerts = reports.open_alerts()
    firing = reports.firing(ALERTS_LISTED)
    last_calls = reports.last_calls()
    # Per marketplace: what it holds open, the free SIMs in its lane (only it counts and issues
    # them) and its last call; aggregates, so a farm of any size is read in a few rows.
    holding = reports.open_by_marketplace()
    lanes = {name: free for name, free in reports.free_by_lane().items() if name != "none"}
    marketplaces = {
        name: {
            "open_operations": holding.get(name, 0),
            "free_in_lane": lanes.get(name, 0),
            "last_call_at": last_calls.get(name),
        }
        for name in sorted({*holding, *last_calls, *lanes})
    }
    day = day_starts(1, now)[0]
    by_currency: dict[str, dict[str, int]] = {}
    for row in reports.marketplace_stats(day, day):
        if row.sold_today:
            money = by_currency.setdefault(row.currency, {"sold": 0, "earnings": 0})
            money["sold"] += row.sold_today
            money["earnings"] += row.earnings_today
    return {
        "numbers": reports.number_states(),
        "marketplaces": marketplaces,
        "pushes": {
            "pending": outbox.pending,
            "oldest_pending_seconds": outbox.oldest_age(now),
            "rejected": outbox.rejected,
            "given_up": outbox.given_up,
        },
        "gateways_silent": sorted(
            key.split(":", 1)[-1] for key, rule in open_alerts.items() if rule == GATEWAY_SILENT
        ),
        "alerts": sorted(open_alerts),
        "open_alerts": {
            "total": firing.total,
            "newest": [
                {"key": a.key, "rule": a.rule, "text": a.text, "since": a.since} for a in firing.items
            ],
        },
        "today": {
            "sold": today.sold,
            "finished": today.finished,
            "earnings_kopecks": int(today.earnings),
            "by_currency": by_currency,
        },
    }


def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """The farm at a glance: numbers, marketplaces, pushes, silent gateways, history, today's earnings."""
    from simgate.commands.history import history_line, history_status

    now, current = time.time(), settings()
    with database(current) as store:
        report = store.run_report(lambda r: farm_status(r, now))
        pruned = store.run_read(lambda uow: uow.history.pruned())
    report["history"] = history_status(current.history, pruned, now)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
        return
    numbers = report["numbers"]
    typer.echo("numbers      " + ", ".join(f"{numbers.get(s, 0)} {s}" for s in NUMBER_STATES))
    for name, seen in report["marketplaces"].items():
        last = seen["last_call_at"]
        ago = "never called" if last is None else f"last call {_ago(now - last)} ago"
        typer.echo(
            f"{name:<12} {seen['open_operations']} open operation(s), {seen['free_in_lane']} free SIM(s)"
            f" in its lane, {ago}"
        )
    if not report["marketplaces"]:
        typer.echo("marketplaces none has called yet")
    pushes = report["pushes"]
    oldest = pushes["oldest_pending_seconds"]
    typer.echo(
        f"pushes       {pushes['pending']} pending"
        + (f" (oldest {_ago(oldest)})" if oldest is not None else "")
        + f", {pushes['rejected']} rejected, {pushes['given_up']} given up"
    )
    silent = report["gateways_silent"]
    typer.echo("gateways     " + (f"silent: {', '.join(silent)}" if silent else "none silent"))
    alerts = report["open_alerts"]
    for i, alert in enumerate(alerts["newest"]):
        label = "alerts" if i == 0 else ""
        typer.echo(f"{label:<12} {alert['text']} (for {_ago(now - alert['since'])})")
    if alerts["total"] > len(alerts["newest"]):
        typer.echo(f"{'':<12} and {alerts['total'] - len(alerts['newest'])} more (--json lists every key)")
    typer.echo(f"history      {history_line(report['history'], current.history, now)}")
    today = report["today"]
    # Each currency apart (never added across); RUB is always shown, even at zero.
    money = {"RUB": {"sold": 0, "earnings": 0}, **today["by_currency"]}
    typer.echo(
        "today        "
        + "; ".join(f"{rubles(m['earnings'])} {c} from {m['sold']} sale(s)" for c, m in money.items())
    )


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- earnings ---------------------------------------------------------------------------------


def marketplace_rows(reports: Reports, since: Timestamp) -> list[MarketplaceStats]:
    """Per marketplace and currency, side by side, never added across currencies (SMSHUB may
    pay in USD what Onlinesim pays in RUB). Sorted by marketplace, then currency."""
    return reports.marketplace_stats(since, since)


def earnings_rows(reports: Reports, starts: Sequence[Timestamp], by: str | None) -> list[GroupStats]:
    """Per day (key: the date), or per SIM or service over the whole window."""
    stats: Stats = reports.stats(starts, top=10**9, groups=by is not None)
    if by == "sim":
        return stats.by_number
    if by == "service":
        return stats.by_service
    return [
        GroupStats(
            time.strftime("%Y-%m-%d", time.localtime(d.start)), d.opened, d.finished, d.sold, d.earnings
        )
        for d in stats.days
    ]


def earnings(
    days: Annotated[int, typer.Option(help="Today and the days before it")] = 7,
    by: Annotated[str | None, typer.Option(help="sim, service or marketplace (default: per day)")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout, for a spreadsheet")] = False,
) -> None:
    """What the farm earned: sales are counted on the day the marketplace finished them."""
    if not 1 <= days <= 3660:
        fail("--days must be between 1 and 3660", 2)
    if by is not None and by not in BY:
        fail("--by must be sim, service or marketplace", 2)
    starts = day_starts(days, time.time())
    if by == "marketplace":
        with database() as store:
            per_currency = store.run_report(lambda r: marketplace_rows(r, starts[0]))
        _print_marketplaces(per_currency, days, as_csv)
        return
    with database() as store:
        # One snapshot for both, so the line under the table counts the sales the table does.
        rows, per_currency = store.run_report(
            lambda r: (earnings_rows(r, starts, by), [] if as_csv else marketplace_rows(r, starts[0]))
        )
    key = by or "day"
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow([key, "opened", "finished", "sold", "earnings_rub"])
        for r in rows:
            out.writerow([r.key, r.opened, r.finished, r.sold, rubles(r.earnings)])
        return
    table = Table(
        key, *(Column(name, justify="right") for name in ("opened", "finished", "sold", "success", "RUB"))
    )
    for r in rows:
        rate = "-" if r.success_rate is None else f"{r.success_rate:.0%}"
        table.add_row(r.key, str(r.opened), str(r.finished), str(r.sold), rate, rubles(r.earnings))
    console.print(table)
    total = sum(r.earnings for r in rows)
    console.print(f"{rubles(total)} RUB from {sum(r.sold for r in rows)} sale(s) in {days} day(s)")
    others = other_currencies(per_currency)
    if others is not None:
        console.print(others)


def other_currencies(rows: Sequence[MarketplaceStats]) -> str | None:
    """The sales the RUB column leaves out (a marketplace that pays in USD), one clause per
    currency: the table's `sold` counts them, its money does not. None when there are none."""
    sold: Counter[str] = Counter()
    earned: Counter[str] = Counter()
    for r in rows:
        if r.currency != "RUB" and r.sold:
            sold[r.currency] += r.sold
            earned[r.currency] += r.earnings
    if not sold:
        return None
    clauses = ", ".join(f"{rubles(earned[c])} {c} from {sold[c]} sale(s)" for c in sorted(sold))
    return f"of which paid in other currencies: {clauses}, not in the RUB column (--by marketplace)"


def _print_marketplaces(rows: list[MarketplaceStats], days: int, as_csv: bool) -> None:
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["marketplace", "currency", "opened", "sold", "earnings"])
        for r in rows:
            out.writerow([r.marketplace, r.currency, r.opened, r.sold, rubles(r.earnings)])
        return
    names = ("opened", "sold", "earned")
    table = Table("marketplace", "currency", *(Column(name, justify="right") for name in names))
    for r in rows:
        table.add_row(r.marketplace, r.currency, str(r.opened), str(r.sold), rubles(r.earnings))
    console.print(table)
    totals: Counter[str] = Counter()
    for r in rows:
        totals[r.currency] += r.earnings
    money = ", ".join(f"{rubles(totals[c])} {c}" for c in sorted(totals)) or "0.00 RUB"
    console.print(f"{money} from {sum(r.sold for r in rows)} sale(s) in {days} day(s)")


# --- backup -----------------------------------------------------------------------------------


def backup(file: Annotated[Path, typer.Argument(help="Where to write the copy (must not exist)")]) -> None:
    """Copy the database while `serve` runs (SQLite); on PostgreSQL, print the pg_dump to run.

    SQLite's online backup: a consistent copy without stopping `serve`.
    """
    import sqlite3

    current = load()
    if not current.is_sqlite:
        # pg_dump is the right tool: consistent, and it restores into any PostgreSQL version.
        typer.echo(f"pg_dump --format=custom --file {file} '{hide_password(current.database_url)}'")
        typer.echo("(give the password with PGPASSWORD or ~/.pgpass; restore with pg_restore)", err=True)
        return
    if file.exists():
        fail(f"{file} exists; choose a new file name (a backup never overwrites)")
    try:
        require_database(current)
    except DatabaseMissing as error:
        fail(str(error))
    source_path = sqlite_file(current)
    typer.echo(f"database: {source_path}", err=True)
    try:
        # Read-only source: a backup must never create or change the farm's database.
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(file)
        try:
            # Pages are copied in steps so serve's writer is never held for long; a write
            # in between restarts the copy from a consistent point (SQLite's backup API).
            source.backup(target, pages=1024, sleep=0.05)
        finally:
            target.close()
            source.close()
    except sqlite3.Error as error:
        file.unlink(missing_ok=True)
        fail(f"backup to {file} failed: {error}")
    typer.echo(f"backed up {source_path} to {file} ({file.stat().st_size} bytes)")


# --- check ------------------------------------------------------------------------------------


def problems_of(current: Settings, *, recount: bool = False) -> tuple[list[str], list[str]]:
    """(problems, notes): what stops `serve`, and what it would warn about; with `recount`,
    kept counts that differ from a recount are rebuilt (and noted) instead."""
    import os

    from simgate.bootstrap import ensure_schema, push_warnings, require_serving
    from simgate.dashboard.auth import NOT_CONFIGURED
    from simgate.hardware import build_drivers
    from simgate.storage.schema import SchemaMismatch

    problems: list[str] = list(misspelt_variables(os.environ))
    notes: list[str] = []
    try:
        require_serving(current)
    except SettingsError as error:
        problems.append(str(error))
    try:
        build_drivers(current.hardware, _NoSink(), time.time)
    except SettingsError as error:
        problems.append(str(error))
    notes.extend(push_warnings(current))
    if current.intake_token is None:
        notes.append("SIMGATE_INTAKE_TOKEN is not set: POST /intake/sms answers 503")
    if current.admin_token is None:
        notes.append(NOT_CONFIGURED)
    try:
        require_database(current)
        ensure_schema(current)
        problems.extend(_count_drift(current, recount, notes))
    except (DatabaseMissing, SchemaMismatch) as error:
        problems.append(str(error))
    except Exception as error:  # unreachable, refused, not a database: one line each
        problems.append(describe_error(error))
    return problems, notes


def _count_drift(current: Settings, recount: bool, notes: list[str]) -> list[str]:
    """GET_SERVICES reads counts the database keeps (migration 0011): they must equal a
    recount, or a marketplace is told of numbers that are not there (or never offered them)."""
    from simgate.bootstrap import open_store

    store = open_store(current)
    try:
        # One snapshot for the kept counts and the recount (PostgreSQL: REPEATABLE READ), so a
        # claim committed between the two reads is not taken for drift; and no write lock.
        drift = store.run_read(lambda uow: uow.numbers.count_drift())
        if not drift:
            return []
        if recount:
            store.run(lambda uow: uow.numbers.rebuild_counts())
            notes.append(f"GET_SERVICES counts differed from a recount in {len(drift)} place(s): rebuilt")
            return []
    finally:
        store.close()
    return [
        f"GET_SERVICES counts differ from a recount in {len(drift)} place(s), first {drift[0]}"
        " (a bug: please report it; `simgate check --recount` rebuilds them)"
    ]


class _NoSink:
    """Drivers are only built (their tables checked), never started: nothing reaches this."""

    async def accept(self, incoming: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("simgate check does not receive SMS")

    async def set_online(self, phone: Any, online: bool) -> bool:  # pragma: no cover
        return False


def check(
    recount: Annotated[
        bool,
        typer.Option(
            "--recount",
            help="Rebuild GET_SERVICES' kept counts from the numbers if they differ from a recount",
        ),
    ] = False,
) -> None:
    """Check the settings and the database as `serve` would, without serving: one line per problem."""
    try:
        current = load_settings(config_file=State.config)
    except SettingsError as error:
        # Every bad setting, each on its own line (load_settings joins them with "; ").
        import os

        for problem in [*misspelt_variables(os.environ), *str(error).split("; ")]:
            typer.echo(f"simgate: {problem}", err=True)
        raise typer.Exit(2) from None
    problems, notes = problems_of(current, recount=recount)
    for note in notes:
        typer.echo(f"simgate: warning: {note}", err=True)
    for problem in problems:
        typer.echo(f"simgate: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"settings and database are fine ({database_label(current)})")
