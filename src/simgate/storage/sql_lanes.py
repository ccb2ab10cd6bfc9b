"""Marketplaces and lanes in SQL (domain/lanes.py says what; this carries it out).

Every change is a conditional update on the rows it means, so a concurrent GET_NUMBER (which
takes its number with FOR UPDATE SKIP LOCKED on PostgreSQL, or runs before or after on the
SQLite writer) and a second simgate instance rebalancing at the same moment can only make a
move do less, never let two marketplaces count or issue one SIM.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from simgate.domain import lanes
from simgate.domain.lanes import Demand, LaneGroup, Move
from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.domain.model import Marketplace
from simgate.domain.types import CountryName, NumberId, Timestamp
from simgate.storage.sql_base import FREE, Connection, resale_filter, sync_exclusions

CHUNK = 500
"""Ids per statement: far below SQLite's and PostgreSQL's parameter limits."""

IDLE_SINCE = (
    "CASE WHEN COALESCE(n.last_issued_at, 0) > COALESCE(n.lane_moved_at, 0)"
    " THEN COALESCE(n.last_issued_at, 0) ELSE COALESCE(n.lane_moved_at, 0) END"
)
"""lanes.idle_since in SQL (SQLite's max() of a NULL is NULL, PostgreSQL's GREATEST skips it)."""
LEAVE_ORDER = (
    f"CASE WHEN {IDLE_SINCE} < ? THEN 0 ELSE 1 END,"
    f" CASE WHEN {IDLE_SINCE} < ? THEN {IDLE_SINCE} ELSE -({IDLE_SINCE}) END"
)
"""lanes.leave_order in SQL: idle first (longest idle first), then the most recently issued."""


LAST_ISSUED_FIRST = (
    "CASE WHEN COALESCE(n.lane_moved_at, 0) >= ? THEN 1 ELSE 0 END, -COALESCE(n.last_issued_at, 0)"
)
"""lanes.leave_order(last_issued_first=True): the last sold first, one that just arrived last."""


def _leave_order(move: Move) -> str:
    if not move.last_issued_first:
        return LEAVE_ORDER
    return LAST_ISSUED_FIRST if move.idle_before is not None else "-COALESCE(n.last_issued_at, 0)"


def _leave_params(move: Move) -> tuple[float, ...]:
    if move.last_issued_first:
        return () if move.idle_before is None else (move.idle_before,)
    # No threshold: nothing is idle (idle_since is never below 0).
    before = 0.0 if move.idle_before is None else move.idle_before
    return (before, before)


class SqlLanes:
    def __init__(self, db: Connection, *, skip_locked: bool = False, ledger: LedgerRules = NO_RULES) -> None:
        self.db = db
        self.ledger = ledger
        self.lock_clause = " FOR UPDATE SKIP LOCKED" if skip_locked else ""

    def marketplaces(self) -> list[Marketplace]:
        rows = self.db.execute(
            "SELECT name, enabled, weight, last_services_at FROM marketplaces ORDER BY name"
        ).fetchall()
        return [Marketplace(r[0], bool(r[1]), float(r[2]), r[3]) for r in rows]

    def save_marketplace(self, name: str, enabled: bool, weight: float | None, now: Timestamp) -> None:
        changed = self.db.execute(
            "UPDATE marketplaces SET enabled = ?, weight = COALESCE(?, weight), updated_at = ?"
            " WHERE name = ?",
            (enabled, weight, now, name),
        ).rowcount
        if changed == 0:
            self.db.execute(
                "INSERT INTO marketplaces (name, enabled, weight, updated_at) VALUES (?, ?, ?, ?)",
                (name, enabled, 1.0 if weight is None else weight, now),
            )

    def record_poll(self, marketplace: str, asked_at: Timestamp) -> int:
        self.db.execute(
            "UPDATE marketplaces SET last_services_at = ? WHERE name = ?"
            " AND (last_services_at IS NULL OR last_services_at < ?)",
            (asked_at, marketplace, asked_at),
        )
        # Through ix_numbers_leaving: after almost every poll there is nothing to find.
        ids = [
            NumberId(r[0])
            for r in self.db.execute(
                "SELECT id FROM numbers WHERE lane = ? AND lane_target IS NOT NULL AND lane_leaving_at < ?",
                (marketplace, asked_at - lanes.CLOCK_SKEW),
            ).fetchall()
        ]
        return self._join(ids, "lane = ? AND lane_leaving_at < ?", marketplace, asked_at - lanes.CLOCK_SKEW)

    def _join(self, ids: Sequence[NumberId], condition: str, *params: object) -> int:
        joined = 0
        for chunk in _chunks(ids):
            marks = ", ".join("?" for _ in chunk)
            joined += self.db.execute(
                "UPDATE numbers SET lane = lane_target, lane_target = NULL, lane_leaving_at = NULL"
                f" WHERE id IN ({marks}) AND lane_target IS NOT NULL AND {condition}",
                (*chunk, *params),
            ).rowcount
            sync_exclusions(self.db, f"n.id IN ({marks})", *chunk)
        return joined

    def groups(self, idle_before: Timestamp | None = None) -> list[LaneGroup]:
        idle = (
            "0"
            if idle_before is None
            else f"SUM(CASE WHEN {FREE} AND n.lane_target IS NULL AND n.lane IS NOT NULL"
            f" AND {IDLE_SINCE} < ? THEN 1 ELSE 0 END)"
        )
        rows = self.db.execute(
            "SELECT n.country, n.lane, n.lane_target, n.marketplaces, COUNT(*),"
            f" SUM(CASE WHEN {FREE} AND n.lane_target IS NULL THEN 1 ELSE 0 END), {idle}"
            " FROM numbers n GROUP BY n.country, n.lane, n.lane_target, n.marketplaces",
            () if idle_before is None else (idle_before,),
        ).fetchall()
        return [
            LaneGroup(
                CountryName(r[0]),
                r[1],
                r[2],
                lanes.parse_allowed(r[3]),
                int(r[4]),
                int(r[5] or 0),
                int(r[6] or 0),
            )
            for r in rows
        ]

    def demand(self, since: Timestamp) -> Demand:
        rows = self.db.execute(
            "SELECT marketplace, country, COUNT(*) FROM operations WHERE opened_at >= ?"
            " GROUP BY marketplace, country",
            (since,),
        ).fetchall()
        return {(r[0], CountryName(r[1])): int(r[2]) for r in rows}

    def _pick(self, move: Move, now: Timestamp | None, where: str, *params: object) -> list[NumberId]:
        # Never into a lane a resale window forbids (domain/ledger.py): the planner counts
        # groups, not ledgers, so the pick passes over held SIMs and the move does less.
        held, more = (
            ("", [])
            if move.target is None
            else resale_filter(self.ledger, move.target, time.time() if now is None else now, "n.id")
        )
        rows = self.db.execute(
            f"SELECT n.id FROM numbers n WHERE n.country = ? AND n.marketplaces = ? AND {where}{held}"
            f" ORDER BY {_leave_order(move)}, n.id LIMIT ?{self.lock_clause}",
            (
                move.country,
                lanes.format_allowed(move.allowed),
                *params,
                *more,
                *_leave_params(move),
                move.count,
            ),
        ).fetchall()
        return [NumberId(r[0]) for r in rows]

    def place(self, move: Move, now: Timestamp | None = None) -> int:
        ids = self._pick(move, now, "n.lane IS NULL")
        at = time.time() if now is None else now
        placed = 0
        for chunk in _chunks(ids):
            marks = ", ".join("?" for _ in chunk)
            placed += self.db.execute(
                f"UPDATE numbers SET lane = ?, lane_moved_at = ? WHERE id IN ({marks}) AND lane IS NULL",
                (move.target, at, *chunk),
            ).rowcount
            sync_exclusions(self.db, f"n.id IN ({marks})", *chunk)
        return placed

    def mark_leaving(self, move: Move, now: Timestamp | None = None) -> list[NumberId]:
        where = f"n.lane = ? AND n.lane_target IS NULL AND {FREE}"
        params: list[object] = [move.source]
        if move.only_idle and move.idle_before is not None:
            where += f" AND {IDLE_SINCE} < ?"
            params.append(move.idle_before)
        ids = self._pick(move, now, where, *params)
        # An unplaced SIM leaves at once: nothing may sell it where it is.
        assignment = "lane = NULL" if move.target is None else "lane_target = ?, lane_leaving_at = NULL"
        at = time.time() if now is None else now
        values = (at,) if move.target is None else (move.target, at)
        marked: list[NumberId] = []
        for chunk in _chunks(ids):
            marks = ", ".join("?" for _ in chunk)
            rows = self.db.execute(
                f"UPDATE numbers SET {assignment}, lane_moved_at = ? WHERE id IN ({marks}) AND lane = ?"
                " AND lane_target IS NULL AND open_operation_id IS NULL RETURNING id",
                (*values, *chunk, move.source),
            ).fetchall()
            marked += [NumberId(r[0]) for r in rows]
            sync_exclusions(self.db, f"n.id IN ({marks})", *chunk)
        return marked

    def unstamped(self) -> list[NumberId]:
        rows = self.db.execute(
            "SELECT id FROM numbers WHERE lane_target IS NOT NULL AND lane_leaving_at IS NULL"
        ).fetchall()
        return [NumberId(r[0]) for r in rows]

    def stamp(self, number_ids: Sequence[NumberId], now: Timestamp) -> int:
        stamped = 0
        for chunk in _chunks(number_ids):
            marks = ", ".join("?" for _ in chunk)
            stamped += self.db.execute(
                f"UPDATE numbers SET lane_leaving_at = ? WHERE id IN ({marks})"
                " AND lane_target IS NOT NULL AND lane_leaving_at IS NULL",
                (now, *chunk),
            ).rowcount
        return stamped

    def join_stale(self, before: Timestamp) -> int:
        ids = [
            NumberId(r[0])
            for r in self.db.execute(
                "SELECT id FROM numbers WHERE lane_target IS NOT NULL AND lane_leaving_at < ?", (before,)
            ).fetchall()
        ]
        return self._join(ids, "lane_leaving_at < ?", before)

    def release_disabled(self, enabled: Sequence[str]) -> None:
        names = list(enabled) or [""]
        marks = ", ".join("?" for _ in names)
        ids = [
            NumberId(r[0])
            for r in self.db.execute(
                f"SELECT id FROM numbers WHERE (lane IS NOT NULL AND lane NOT IN ({marks}))"
                f" OR (lane_target IS NOT NULL AND lane_target NOT IN ({marks}))",
                (*names, *names),
            ).fetchall()
        ]
        for chunk in _chunks(ids):
            which = ", ".join("?" for _ in chunk)
            self.db.execute(
                "UPDATE numbers SET lane_target = NULL, lane_leaving_at = NULL"
                f" WHERE id IN ({which}) AND lane_target NOT IN ({marks})",
                (*chunk, *names),
            )
            self.db.execute(
                "UPDATE numbers SET lane = lane_target, lane_target = NULL, lane_leaving_at = NULL"
                f" WHERE id IN ({which}) AND lane_target IS NOT NULL AND lane NOT IN ({marks})",
                (*chunk, *names),
            )
            self.db.execute(
                "UPDATE numbers SET lane = NULL"
                f" WHERE id IN ({which}) AND lane NOT IN ({marks}) AND open_operation_id IS NULL",
                (*chunk, *names),
            )
            sync_exclusions(self.db, f"n.id IN ({which})", *chunk)


def _chunks(ids: Sequence[NumberId]) -> list[Sequence[NumberId]]:
    return [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]
