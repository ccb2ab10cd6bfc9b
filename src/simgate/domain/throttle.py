"""Back-off for failed sign-ins: a small in-process limiter per client address.

Each address may fail `free` times; every further failure doubles how long it must wait
(1 s, 2 s, 4 s, ... up to `longest`), and while it waits its attempts are refused unchecked,
the right secret included (else guessing goes on at full speed and only the answers wait).
Failures are forgotten `forget_after` seconds after the last one. Pure: time is passed in.

In process and per instance: several `serve` instances each keep their own counts, which
multiplies an attacker's budget by the number of instances, not more (docs/security.md).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0


@dataclass
class Throttle:
    free: int = 10
    first: float = 1.0
    longest: float = 300.0
    forget_after: float = 900.0
    max_tracked: int = 10_000
    """Addresses remembered at once; the least recently failed is dropped first (bounded memory)."""
    _records: OrderedDict[str, _Record] = field(default_factory=OrderedDict, repr=False)

    def wait(self, who: str, now: float) -> float:
        """Seconds `who` must still wait before an attempt is checked (0: go ahead)."""
        record = self._records.get(who)
        if record is None:
            return 0.0
        if now - record.last > self.forget_after:
            del self._records[who]
            return 0.0
        return max(0.0, record.until - now)

    def failed(self, who: str, now: float) -> float:
        """Count a failure; returns the wait it earned (0 while within the free allowance)."""
        record = self._records.pop(who, None) or _Record()
        if now - record.last > self.forget_after:
            record = _Record()
        record.failures += 1
        record.last = now
        extra = record.failures - self.free
        if extra > 0:
            record.until = now + min(self.longest, self.first * 2 ** min(extra - 1, 30))
        self._records[who] = record  # to the end: most recently failed
        while len(self._records) > self.max_tracked:
            self._records.popitem(last=False)
        return max(0.0, record.until - now)
