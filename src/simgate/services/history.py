"""Pruning history past SIMGATE_HISTORY_DAYS: `simgate prune`, and a background task in `serve`.

A pass deletes one batch of each table, in the order rows refer to each other, each batch
its own transaction; a prune repeats passes until every batch comes back short. So a prune
never holds the SQLite writer or a PostgreSQL lock for more than one batch, and the backlog
of a farm that turns pruning on after a year is worked off gradually, between other writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from simgate.domain.history import BATCH, TABLES, HistoryPolicy, PrunePlan
from simgate.domain.types import Timestamp
from simgate.storage.ports import Store, UnitOfWork

log = logging.getLogger("simgate.history")

EVERY = 300.0
"""Seconds between prunes in `serve`: a day's history ages out in ~300 small batches."""
PAUSE = 0.05
"""Seconds between two passes of one prune: other writes go first."""


def _batch(table: str, plan: PrunePlan, limit: int) -> Callable[[UnitOfWork], int]:
    return lambda uow: uow.history.prune(table, plan, limit)


def _short(removed: Mapping[str, int], batch: int) -> bool:
    return all(rows < batch for rows in removed.values())


def _add(total: dict[str, int], removed: Mapping[str, int]) -> None:
    for table, rows in removed.items():
        total[table] = total.get(table, 0) + rows


def _note(removed: dict[str, int], now: Timestamp) -> Callable[[UnitOfWork], None]:
    return lambda uow: uow.history.note(removed, now)


def _log(removed: Mapping[str, int], plan: PrunePlan) -> None:
    kept = time.strftime("%Y-%m-%d %H:%M", time.localtime(plan.before))
    log.info(
        "history: pruned %s (kept since %s)",
        ", ".join(f"{rows} {table}" for table, rows in removed.items() if rows),
        kept,
    )


def prune_pass(store: Store, plan: PrunePlan, batch: int = BATCH) -> dict[str, int]:
    """One batch of each table, in history.TABLES order; the rows each removed."""
    return {table: store.run(_batch(table, plan, batch)) for table in TABLES}


def prune_history(store: Store, policy: HistoryPolicy, now: Timestamp, batch: int = BATCH) -> dict[str, int]:
    """Prune until every batch comes back short (`simgate prune`); the rows removed per table.
    Nothing when the policy keeps history forever."""
    plan = policy.plan(now)
    removed = dict.fromkeys(TABLES, 0)
    if plan is None:
        return removed
    while True:
        done = prune_pass(store, plan, batch)
        _add(removed, done)
        if _short(done, batch):
            break
    if any(removed.values()):
        store.run(_note(removed, now))
        _log(removed, plan)
    return removed


class HistoryPruner:
    """The background task of `serve`: a prune every `every` seconds, until stopped.

    Safe beside other instances on PostgreSQL: each batch takes rows no other holds (SKIP
    LOCKED) and a row deleted by another is simply not counted, so two prunes at once only
    share the work."""

    def __init__(
        self,
        store: Store,
        policy: HistoryPolicy,
        clock: Callable[[], Timestamp],
        *,
        every: float = EVERY,
        batch: int = BATCH,
        pause: float = PAUSE,
    ) -> None:
        self.store, self.policy, self.clock = store, policy, clock
        self.every, self.batch, self.pause = every, batch, pause
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)
            if self._stop.is_set():
                return
            try:
                await self.prune()
            except Exception:  # the database away: the next round tries again
                log.exception("history pruning failed; retrying next round")

    async def prune(self) -> dict[str, int]:
        now = self.clock()
        plan = self.policy.plan(now)
        removed = dict.fromkeys(TABLES, 0)
        if plan is None:
            return removed
        while not self._stop.is_set():
            done = {table: await self.store.transact(_batch(table, plan, self.batch)) for table in TABLES}
            _add(removed, done)
            if _short(done, self.batch):
                break
            await asyncio.sleep(self.pause)
        if any(removed.values()):
            await self.store.transact(_note(removed, now))
            _log(removed, plan)
        return removed

    def stop(self) -> None:
        self._stop.set()
