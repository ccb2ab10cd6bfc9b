"""In-memory history pruning, held to the same contract tests as sql_history (it asks the
domain's predicates, which the SQL must agree with)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from simgate.domain import history
from simgate.domain.history import Batch, Position, PrunePlan
from simgate.domain.model import Operation
from simgate.domain.read_model import BLOCKED, earned, status_name
from simgate.domain.types import EVERYWHERE, OperationId, Timestamp
from simgate.storage.history_ports import Pruned
from simgate.storage.memory_state import MemoryState


class MemoryHistory:
    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def _messages_going(self, plan: PrunePlan) -> list[int]:
        out = self.s.outbox
        deliveries: dict[int, list[int]] = {}
        for d in out.deliveries.values():
            deliveries.setdefault(d.message_id, []).append(d.id)
        return [
            m.id
            for m in sorted(out.messages.values(), key=lambda m: (m.stored_at, m.id))
            if history.message_goes(
                m,
                None if m.operation_id is None else self.s.operations.get(m.operation_id),
                [out.deliveries[i] for i in deliveries.get(m.id, [])],
                plan,
            )
        ]

    def _excluded(self, operation: Operation) -> bool:
        """Excluded for good: an owner's block can be lifted (sql_history.still_counted)."""
        scopes = {EVERYWHERE, operation.marketplace}
        rows = self.s.exclusions.get(operation.number_id, {})
        return any(
            service == operation.service and scope in scopes and reason != BLOCKED
            for (service, scope), reason in rows.items()
        )

    def _operations_going(self, plan: PrunePlan, gone: set[int]) -> list[Operation]:
        """Oldest first, the operations that go once the messages `gone` and their pushes have."""
        out = self.s.outbox
        referenced = {m.operation_id for m in out.messages.values() if m.id not in gone}
        referenced |= {d.operation_id for d in out.deliveries.values() if d.message_id not in gone}
        return [
            o
            for o in sorted(self.s.operations.values(), key=lambda o: (o.finished_at or 0.0, o.id))
            if history.operation_goes(o, plan, excluded=self._excluded(o), referenced=o.id in referenced)
        ]

    def _notices_going(self, plan: PrunePlan) -> list[int]:
        alerts = self.s.alerts
        still_open = {key: a.rule for key, a in alerts.alerts.items() if a.resolved_at is None}
        return [i for i, n in sorted(alerts.notices.items()) if history.notice_goes(n, plan, still_open)]

    def prune(self, table: str, plan: PrunePlan, limit: int, after: Position = history.START) -> Batch:
        if table not in history.WALK:
            raise ValueError(f"not a history table: {table}")
        scan = history.SCAN * limit
        windows = {
            "messages": self._message_window,
            "operations": self._operation_window,
            "alert_notices": self._notice_window,
        }
        window = windows[history.WALK[table]](plan, after, scan)
        front = {position.id for position, _ in _first(window, limit)}
        gone: set[int] = set()
        removed = 0
        if front and table == "delivery_attempts":
            removed = self._attempts(front, limit)
        elif front and table == "deliveries":
            removed = self._deliveries(front, limit)
        elif front and table == "messages":
            gone = self._messages(front, limit)
        elif front and table == "operations":
            gone = self._operations(front)
        elif front:
            gone = self._notices(front)
        # No front: sql_history's walk goes past old rows that all stay without deleting.
        removed = removed or len(gone)
        going = [position for position, goes in window if goes][: limit + 1]
        end = window[-1][0] if len(window) == scan else None
        return Batch(removed, history.reached(going, end, gone))

    def _message_window(self, plan: PrunePlan, after: Position, scan: int) -> list[tuple[Position, bool]]:
        """sql_history's window: the first `scan` old messages after `after`, whether each goes."""
        going = set(self._messages_going(plan))
        rows = ((Position(m.stored_at, m.id), m.id in going) for m in self.s.outbox.messages.values())
        return _window(rows, plan, after, scan)

    def _operation_window(self, plan: PrunePlan, after: Position, scan: int) -> list[tuple[Position, bool]]:
        going = {o.id for o in self._operations_going(plan, set(self._messages_going(plan)))}
        rows = (
            (Position(o.finished_at, o.id), o.id in going)
            for o in self.s.operations.values()
            if o.finished_at is not None
        )
        return _window(rows, plan, after, scan)

    def _notice_window(self, plan: PrunePlan, after: Position, scan: int) -> list[tuple[Position, bool]]:
        going = set(self._notices_going(plan))
        rows = (
            (Position(n.sent_at, i), i in going)
            for i, n in self.s.alerts.notices.items()
            if n.sent_at is not None
        )
        return _window(rows, plan, after, scan)

    def _attempts(self, going: set[int], limit: int) -> int:
        out = self.s.outbox
        removed = 0
        for delivery_id, d in sorted(out.deliveries.items()):
            attempts = out.attempts.get(delivery_id)
            if d.message_id not in going or not attempts or removed >= limit:
                continue
            take = min(limit - removed, len(attempts))
            out.attempts[delivery_id] = attempts[take:]
            removed += take
            if not out.attempts[delivery_id]:
                del out.attempts[delivery_id]
        return removed

    def _deliveries(self, going: set[int], limit: int) -> int:
        out = self.s.outbox
        bare = [i for i, d in sorted(out.deliveries.items()) if not out.attempts.get(i)]
        ids = [i for i in bare if out.deliveries[i].message_id in going]
        for delivery_id in ids[:limit]:
            del out.deliveries[delivery_id]
            out.claims.pop(delivery_id, None)
        return len(ids[:limit])

    def _messages(self, going: set[int], limit: int) -> set[int]:
        out = self.s.outbox
        pushed = {d.message_id for d in out.deliveries.values()}
        ids = sorted(i for i in going if i not in pushed)[:limit]
        for message_id in ids:
            del out.messages[message_id]
        return set(ids)

    def _operations(self, going: set[int]) -> set[int]:
        """Of the front (the oldest `limit` of the window that go once their messages have),
        those whose messages and pushes have gone."""
        front = [self.s.operations[OperationId(i)] for i in going]
        out = self.s.outbox
        referenced = {m.operation_id for m in out.messages.values()}
        referenced |= {d.operation_id for d in out.deliveries.values()}
        operations = [o for o in front if o.id not in referenced]
        for operation in operations:
            del self.s.operations[operation.id]
            self.s.finish_requests.pop(operation.id, None)
            if status_name(operation.finished_at, operation.finish_status) == "sold":
                key = (operation.marketplace, operation.currency)
                sold, money = self.s.pruned_sales.get(key, (0, 0))
                self.s.pruned_sales[key] = (sold + 1, money + earned(operation))
        return {o.id for o in operations}

    def _notices(self, going: set[int]) -> set[int]:
        for notice_id in going:
            del self.s.alerts.notices[notice_id]
        return going

    def prunable(self, plan: PrunePlan) -> dict[str, int]:
        out = self.s.outbox
        going = set(self._messages_going(plan))
        deliveries = [i for i, d in out.deliveries.items() if d.message_id in going]
        return {
            "delivery_attempts": sum(len(out.attempts.get(i, [])) for i in deliveries),
            "deliveries": len(deliveries),
            "messages": len(going),
            "operations": len(self._operations_going(plan, going)),
            "alert_notices": len(self._notices_going(plan)),
        }

    def note(self, removed: Mapping[str, int], now: Timestamp) -> None:
        for table, rows in removed.items():
            if rows > 0:
                before = self.s.pruned.get(table)
                total = rows + (0 if before is None else before.total_rows)
                self.s.pruned[table] = Pruned(table, now, rows, total)

    def pruned(self) -> list[Pruned]:
        return [self.s.pruned[t] for t in history.TABLES if t in self.s.pruned]


def _window(
    rows: Iterable[tuple[Position, bool]], plan: PrunePlan, after: Position, scan: int
) -> list[tuple[Position, bool]]:
    """sql_history's window: the first `scan` rows after `after` older than the horizon."""
    return sorted((p, goes) for p, goes in rows if after < p and p.at < plan.before)[:scan]


def _first(window: list[tuple[Position, bool]], limit: int) -> list[tuple[Position, bool]]:
    """The oldest `limit` rows of the window that go."""
    return [row for row in window if row[1]][:limit]
