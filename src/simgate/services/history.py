"""Pruning history past SIMGATE_HISTORY_DAYS: `simgate prune`, and a background task in `serve`.

A pass deletes one batch of each table, in the order rows refer to each other, each batch
its own transaction. So a prune never holds the SQLite writer or a PostgreSQL lock for more
than one batch, and the backlog of a farm that turns pruning on after a year is worked off
gradually, between other writes.

Each batch examines a bounded stretch of its walk (history.WALK, history.SCAN) and says where
it got to; the next batch of the same prune continues from there, so old rows that stay (SMS
still to be pushed, counted status 4) are read once per prune, not once per batch. A prune
ends when every walk has met the horizon, or when a pass neither removed a row nor moved a
walk (what is left is held by another instance's batch). The next prune starts from the
oldest row again: what stayed may go by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping

from simgate.domain.history import BATCH, START, TABLES, WALK, Batch, HistoryPolicy, Position, PrunePlan
from simgate.domain.types import Timestamp
from simgate.storage.ports import Store, UnitOfWork

log = logging.getLogger("simgate.history")

EVERY = 300.0
"""Seconds between prunes in `serve`: a day's history ages out in ~300 small batches."""
PAUSE = 0.05
"""Seconds between two passes of one prune: other writes go first."""


def _batch(table: str, plan: PrunePlan, limit: int, after: Position) -> Callable[[UnitOfWork], Batch]:
    return lambda uow: uow.history.prune(table, plan, limit, after)


class Run:
    """One prune: where each walk got to, carried from one batch to the next, and the rows removed."""

    def __init__(self, plan: PrunePlan, batch: int) -> None:
        self.plan, self.batch = plan, batch
        self.at: dict[str, Position | None] = dict.fromkeys(WALK.values(), START)
        self.removed = dict.fromkeys(TABLES, 0)
        self.moved = True
        """The last pass removed a row or moved a walk (or none has run yet)."""

    @property
    def done(self) -> bool:
        return not self.moved or all(at is None for at in self.at.values())

    def steps(self) -> Iterator[tuple[str, Callable[[UnitOfWork], Batch]]]:
        """The next pass: a batch of each table whose walk has not met the horizon yet (one
        may meet it mid-pass: the attempts' batch can walk past the last old SMS)."""
        self.moved = False
        for table in TABLES:
            after = self.at[WALK[table]]
            if after is not None:
                yield table, _batch(table, self.plan, self.batch, after)

    def record(self, table: str, batch: Batch) -> None:
        walk = WALK[table]
        self.moved = self.moved or batch.removed > 0 or batch.reached != self.at[walk]
        self.at[walk] = batch.reached
        self.removed[table] += batch.removed


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
    """One batch of each table from the oldest row, in history.TABLES order; the rows each removed."""
    run = Run(plan, batch)
    for table, work in run.steps():
        run.record(table, store.run(work))
    return run.removed


def prune_history(store: Store, policy: HistoryPolicy, now: Timestamp, batch: int = BATCH) -> dict[str, int]:
    """Prune until every walk has met the horizon (`simgate prune`); the rows removed per
    table. Nothing when the policy keeps history forever."""
    plan = policy.plan(now)
    if plan is None:
        return dict.fromkeys(TABLES, 0)
    run = Run(plan, batch)
    while not run.done:
        for table, work in run.steps():
            run.record(table, store.run(work))
    if any(run.removed.values()):
        store.run(_note(run.removed, now))
        _log(run.removed, plan)
    return run.removed


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
        if plan is None:
            return dict.fromkeys(TABLES, 0)
        run = Run(plan, self.batch)
        while not self._stop.is_set():
            for table, work in run.steps():
                run.record(table, await self.store.transact(work))
            if run.done:
                break
            await asyncio.sleep(self.pause)
        if any(run.removed.values()):
            await self.store.transact(_note(run.removed, now))
            _log(run.removed, plan)
        return run.removed

    def stop(self) -> None:
        self._stop.set()
