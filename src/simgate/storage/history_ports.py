"""The history repository: pruning old rows in bounded batches, and what the last prune removed.

Kept apart from ports.py so the feature stays in its own files (domain/history.py says what
may go and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from simgate.domain.history import START, Batch, Position, PrunePlan
from simgate.domain.types import Timestamp


@dataclass(frozen=True, slots=True)
class Pruned:
    """One table's pruning so far: the last prune that removed any of its rows, and all of them."""

    table: str
    last_at: Timestamp
    last_rows: int
    total_rows: int


class HistoryRepository(Protocol):
    def prune(self, table: str, plan: PrunePlan, limit: int, after: Position = START) -> Batch:
        """Delete at most `limit` rows of `table` (one of history.TABLES) that `plan` lets
        go and nothing refers to any more, among the first history.SCAN x `limit` old rows of
        its walk (history.WALK) after `after`; how many went and where the walk goes on
        (history.reached: the messages' batch moves the walk of their attempts and pushes,
        whose own batches leave it where it was). Idempotent: two instances at once delete
        each row once, and a row another deletes meanwhile is simply not counted."""
        ...

    def prunable(self, plan: PrunePlan) -> dict[str, int]:
        """Per table, how many rows a prune would remove now, its earlier tables' included
        (for `simgate prune --dry-run`)."""
        ...

    def note(self, removed: Mapping[str, int], now: Timestamp) -> None:
        """Remember a prune's result: tables with rows removed get `now` and their count."""
        ...

    def pruned(self) -> list[Pruned]:
        """What `note` remembered, one line per table ever pruned, in history.TABLES order."""
        ...
