"""In-memory SMS, outbox and attempts, for the fake store (same contract as sql_outbox)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from simgate.domain.messages import (
    Attempt,
    Delivery,
    DeliveryState,
    DueDelivery,
    IncomingMessage,
    Message,
)
from simgate.domain.model import Operation
from simgate.domain.read_model import MessageQuery
from simgate.domain.types import NumberId, OperationId, Timestamp
from simgate.storage.memory_filters import FAILED, message_matches


@dataclass
class Claim:
    worker: str
    expires_at: Timestamp


@dataclass
class OutboxState:
    messages: dict[int, Message] = field(default_factory=dict)
    deliveries: dict[int, Delivery] = field(default_factory=dict)
    claims: dict[int, Claim] = field(default_factory=dict)
    attempts: dict[int, list[Attempt]] = field(default_factory=dict)
    last_message_id: int = 0
    last_delivery_id: int = 0

    def copy(self) -> OutboxState:
        return OutboxState(
            dict(self.messages), dict(self.deliveries), dict(self.claims),
            {k: list(v) for k, v in self.attempts.items()},
            self.last_message_id, self.last_delivery_id,
        )  # fmt: skip


class MemoryMessages:
    def __init__(self, state: OutboxState) -> None:
        self.s = state

    def find(self, source: str, message_key: str) -> Message | None:
        return next(
            (m for m in self.s.messages.values() if (m.source, m.message_key) == (source, message_key)),
            None,
        )

    def add(
        self,
        incoming: IncomingMessage,
        number_id: NumberId,
        operation_id: OperationId | None,
        now: Timestamp,
    ) -> Message | None:
        if incoming.message_key is not None and self.find(incoming.source, incoming.message_key):
            return None
        self.s.last_message_id += 1
        message = Message(
            self.s.last_message_id, incoming.source, incoming.message_key, incoming.phone,
            number_id, incoming.sender, incoming.text, incoming.received_at, now, operation_id,
        )  # fmt: skip
        self.s.messages[message.id] = message
        return message

    def get(self, message_id: int) -> Message | None:
        return self.s.messages.get(message_id)

    def search(self, where: MessageQuery) -> list[tuple[Message, Delivery | None]]:
        by_message = {d.message_id: d for d in self.s.deliveries.values()}
        found = [
            (message, by_message.get(message.id))
            for message in sorted(self.s.messages.values(), key=lambda m: -m.id)
            if message_matches(message, by_message.get(message.id), where)
        ]
        return found[where.offset : where.offset + where.limit]


class MemoryOutbox:
    def __init__(self, state: OutboxState, operations: dict[OperationId, Operation]) -> None:
        self.s = state
        self.operations = operations

    def enqueue(self, message_id: int, operation_id: OperationId, marketplace: str, now: Timestamp) -> int:
        self.s.last_delivery_id += 1
        delivery = Delivery(
            self.s.last_delivery_id, message_id, operation_id, marketplace,
            DeliveryState.PENDING, 0, now, now, None, None,
        )  # fmt: skip
        self.s.deliveries[delivery.id] = delivery
        return delivery.id

    def claim_due(
        self, worker: str, now: Timestamp, lease: float, limit: int, skip: Collection[str] = ()
    ) -> list[DueDelivery]:
        due = sorted(
            (
                d
                for d in self.s.deliveries.values()
                if d.state is DeliveryState.PENDING
                and d.next_attempt_at <= now
                and d.marketplace not in skip
                and (d.id not in self.s.claims or self.s.claims[d.id].expires_at < now)
            ),
            key=lambda d: (d.next_attempt_at, d.id),
        )[:limit]
        claimed = []
        for d in due:
            self.s.claims[d.id] = Claim(worker, now + lease)
            message, operation = self.s.messages[d.message_id], self.operations[d.operation_id]
            claimed.append(
                DueDelivery(
                    d.id,
                    d.attempts,
                    d.created_at,
                    d.marketplace,
                    d.operation_id,
                    operation.kind,
                    operation.finished_at,
                    message.id,
                    message.phone,
                    message.sender,
                    message.text,
                )
            )
        return claimed

    def record(
        self,
        delivery_id: int,
        worker: str,
        attempt: Attempt,
        state: str,
        next_attempt_at: Timestamp,
        reason: str | None,
    ) -> None:
        # Cut like the SQL columns (500 characters), so the fake cannot drift from them.
        kept = replace(
            attempt,
            response=None if attempt.response is None else attempt.response[:500],
            error=None if attempt.error is None else attempt.error[:500],
        )
        self.s.attempts.setdefault(delivery_id, []).append(kept)
        delivery = self.s.deliveries[delivery_id]
        if delivery.state is not DeliveryState.PENDING:
            return
        self.s.claims.pop(delivery_id, None)
        finished = None if state == DeliveryState.PENDING else attempt.started_at
        self.s.deliveries[delivery_id] = replace(
            delivery, attempts=delivery.attempts + 1, state=DeliveryState(state),
            next_attempt_at=next_attempt_at, finished_at=finished, reason=reason,
        )  # fmt: skip

    def claimants(self) -> list[str]:
        pending = DeliveryState.PENDING
        return sorted({c.worker for i, c in self.s.claims.items() if self.s.deliveries[i].state is pending})

    def release(self, worker: str) -> int:
        mine = [i for i, c in self.s.claims.items() if c.worker == worker]
        for delivery_id in mine:
            del self.s.claims[delivery_id]
        return len(mine)

    def get(self, delivery_id: int) -> Delivery | None:
        return self.s.deliveries.get(delivery_id)

    def attempts(self, delivery_id: int) -> list[Attempt]:
        return list(self.s.attempts.get(delivery_id, []))

    def retry(self, delivery_id: int, now: Timestamp) -> None:
        delivery = self.s.deliveries.get(delivery_id)
        if delivery is not None and delivery.state in FAILED:
            self.s.claims.pop(delivery_id, None)
            self.s.deliveries[delivery_id] = replace(
                delivery, state=DeliveryState.PENDING, next_attempt_at=now, finished_at=None,
                created_at=now,
            )  # fmt: skip
