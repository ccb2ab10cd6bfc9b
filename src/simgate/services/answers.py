"""The last GET_SERVICES answer per marketplace and shape, kept while the counts stand.

An idle farm is asked GET_SERVICES again and again (every marketplace polls it) and the
answer does not change: reading and tallying it again costs a reader thread a few ms of CPU
per call at 100,000 SIMs. The answer is kept with the store's `availability_stamp`, read in
the same snapshot as the counts it describes; a later read gives it again only if its own
snapshot has the same stamp. The stamp lives in the database and moves in the transaction
that changes a count (migration 0016), so no change, by this process or another, is missed.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from simgate.domain.model import CountryAvailability

Key = tuple[str, tuple[str, ...], bool, bool]
"""(marketplace, offered services, with services, with rent): one answer each."""


class AnswerCache:
    """Per server process (a handler's): answers of one store only, never shared between stores."""

    def __init__(self) -> None:
        self._answers: dict[Key, tuple[Hashable, list[CountryAvailability]]] = {}
        self._lock = threading.Lock()  # reader threads put and get beside each other

    def get(self, key: Key, stamp: Hashable) -> list[CountryAvailability] | None:
        with self._lock:
            kept = self._answers.get(key)
        if kept is None or kept[0] != stamp:
            return None
        return kept[1]

    def put(self, key: Key, stamp: Hashable, answer: list[CountryAvailability]) -> None:
        # Last writer wins, even an older snapshot's: its stamp never comes back (versions
        # only grow), so it is a miss later, never a wrong answer.
        with self._lock:
            self._answers[key] = (stamp, answer)
