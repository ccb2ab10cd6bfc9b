"""The in-memory store's records: one value the fake snapshots whole for each unit of work.

Its own module so the repositories over it (memory.py, memory_reports.py) import it rather
than each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simgate.domain.model import Marketplace, Number, Operation
from simgate.domain.read_model import RunStarts
from simgate.domain.types import NumberId, OperationId, ServiceName, Timestamp
from simgate.storage.history_ports import Pruned
from simgate.storage.memory_alerts import AlertState
from simgate.storage.memory_outbox import OutboxState
from simgate.storage.sessions import SessionState


def _fresh_marketplaces() -> dict[str, Marketplace]:
    # What migration 0005 gives a fresh database: Onlinesim, the one seller before lanes.
    return {"onlinesim": Marketplace("onlinesim", enabled=True)}


@dataclass
class MemoryState:
    numbers: dict[NumberId, Number] = field(default_factory=dict)
    exclusions: dict[NumberId, dict[tuple[ServiceName, str], str]] = field(default_factory=dict)
    """Per number: (service, marketplace scope) -> reason."""
    exclusion_origins: dict[tuple[NumberId, ServiceName, str], tuple[Timestamp, OperationId | None]] = field(
        default_factory=dict
    )
    """When each exclusion was made, and by which operation (for `numbers why`)."""
    marketplaces: dict[str, Marketplace] = field(default_factory=_fresh_marketplaces)
    operations: dict[OperationId, Operation] = field(default_factory=dict)
    finish_requests: dict[OperationId, int] = field(default_factory=dict)
    no_sms_streaks: dict[NumberId, tuple[int, int]] = field(default_factory=dict)
    """Per number: its (rent, activation) no-SMS streaks over all history (migration 0025)."""
    no_sms_since: dict[NumberId, RunStarts] = field(default_factory=dict)
    """Per number: when the first operation of each of those streaks opened (migration 0026)."""
    last_number_id: int = 0
    last_operation_id: int = 0
    outbox: OutboxState = field(default_factory=OutboxState)
    alerts: AlertState = field(default_factory=AlertState)
    sessions: SessionState = field(default_factory=SessionState)
    pruned: dict[str, Pruned] = field(default_factory=dict)
    """What the last prunes removed, per table (history_ports.Pruned)."""
    pruned_sales: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(marketplace, currency) -> (sales, earnings) of the operations pruned."""

    def copy(self) -> MemoryState:
        # Records are frozen, so copying the containers is a full snapshot.
        return MemoryState(
            numbers=dict(self.numbers),
            exclusions={k: dict(v) for k, v in self.exclusions.items()},
            exclusion_origins=dict(self.exclusion_origins),
            operations=dict(self.operations),
            finish_requests=dict(self.finish_requests),
            marketplaces=dict(self.marketplaces),
            no_sms_streaks=dict(self.no_sms_streaks),
            no_sms_since=dict(self.no_sms_since),
            last_number_id=self.last_number_id,
            last_operation_id=self.last_operation_id,
            outbox=self.outbox.copy(),
            alerts=self.alerts.copy(),
            sessions=self.sessions.copy(),
            pruned=dict(self.pruned),
            pruned_sales=dict(self.pruned_sales),
        )
