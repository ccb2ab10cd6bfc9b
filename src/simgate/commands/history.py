"""`simgate prune [--dry-run]`: history past SIMGATE_HISTORY_DAYS removed now, and the
`history` lines of `simgate status`. `serve` prunes by itself every few minutes; this is for
an owner who wants the space back now, or to see what would go."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from simgate.commands.common import database, settings
from simgate.domain.history import DAY, TABLES, HistoryPolicy
from simgate.domain.types import Timestamp
from simgate.storage.history_ports import Pruned

WORDS = {
    "delivery_attempts": "push attempts",
    "deliveries": "pushes",
    "messages": "SMS",
    "operations": "operations",
    "alert_notices": "alert notices",
}
"""What an owner reads for each of history.TABLES in the text output; --json keeps the table
names, which scripts rely on."""


def _day(at: Timestamp) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def horizon_text(policy: HistoryPolicy, now: Timestamp) -> str:
    horizon = policy.horizon
    if horizon is None:
        return "kept forever (SIMGATE_HISTORY_DAYS=0)"
    longer = " (the longest resale window)" if horizon > policy.days * DAY else ""
    return f"kept {horizon / DAY:g} days{longer}, since {_day(now - horizon)}"


def history_status(policy: HistoryPolicy, pruned: Sequence[Pruned], now: Timestamp) -> dict[str, Any]:
    """The `history` of `simgate status --json`: the horizon, the last prune, all prunes."""
    horizon = policy.horizon
    last_at = max((p.last_at for p in pruned), default=None)
    return {
        "kept_days": None if horizon is None else horizon / DAY,
        "kept_since": None if horizon is None else now - horizon,
        "last_pruned_at": last_at,
        "last_pruned": {p.table: p.last_rows for p in pruned if p.last_at == last_at},
        "pruned_in_all": {p.table: p.total_rows for p in pruned},
    }


def history_line(report: dict[str, Any], policy: HistoryPolicy, now: Timestamp) -> str:
    text = horizon_text(policy, now)
    last = report["last_pruned_at"]
    if last is None:
        return f"{text}; nothing pruned yet"
    removed = ", ".join(f"{rows} {WORDS[table]}" for table, rows in report["last_pruned"].items())
    return f"{text}; last pruned {_day(last)}: {removed}"


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed, remove nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Remove history older than SIMGATE_HISTORY_DAYS now (serve does it every few minutes)."""
    from simgate.services.history import prune_history

    current = settings()
    policy, now = current.history, time.time()
    plan = policy.plan(now)
    with database(current) as store:
        if plan is None:
            counts = dict.fromkeys(TABLES, 0)
        elif dry_run:
            counts = store.run_read(lambda uow: uow.history.prunable(plan))
        else:
            counts = prune_history(store, policy, now)
    if as_json:
        since = None if plan is None else plan.before
        sys.stdout.write(json.dumps({"dry_run": dry_run, "kept_since": since, "removed": counts}) + "\n")
        return
    typer.echo(f"history {horizon_text(policy, now)}")
    verb = "would remove" if dry_run else "removed"
    for table in TABLES:
        typer.echo(f"{verb} {counts[table]:>10,} {WORDS[table]}")
