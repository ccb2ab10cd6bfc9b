"""Concatenated SMS: put the parts back together, or give up waiting for a missing one.

Pure: each sweep hands over everything the modem stores, and the answer is what is ready to
store. The parts' user data is joined before it is decoded, once: a phone cuts a long SMS by
code units, so a character (an emoji's surrogate pair, a GSM-7 escape and its character) can
straddle two parts and exists only in the joined data. Parts stay on the SIM until their
whole SMS is committed, so a restart loses nothing: the next sweep finds them again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from itertools import groupby

from simgate.domain.types import Timestamp
from simgate.hardware.modem.pdu import Part, decode_text

MISSING = "[…]"
"""Marks where a part that never arrived belongs, so the buyer sees the text is incomplete."""


@dataclass(frozen=True, slots=True)
class Assembled:
    sender: str
    text: str
    sent_at: Timestamp | None
    indices: tuple[int, ...]
    """Every storage slot that held a part (duplicates included): all deleted once stored."""
    key: str
    """The same parts give the same key, so a re-read after a crash is a recognised resend."""
    complete: bool = True


@dataclass
class Assembler:
    timeout: float
    """Seconds to wait for the rest of a concatenated SMS after its first part was seen."""
    first_seen: dict[tuple[str, int, int], Timestamp] = field(default_factory=dict)

    def ready(self, parts: list[Part], now: Timestamp) -> list[Assembled]:
        singles = [part for part in parts if part.group is None]
        groups: dict[tuple[str, int, int], list[Part]] = {}
        for part in parts:
            if part.group is not None:
                groups.setdefault(part.group, []).append(part)
        for gone in set(self.first_seen) - set(groups):
            del self.first_seen[gone]
        result = [join([part]) for part in singles]
        for group, members in groups.items():
            seen = self.first_seen.setdefault(group, now)
            numbers = {part.number for part in members}
            if len(numbers) == group[2]:
                result.append(join(members))
                del self.first_seen[group]
            elif now - seen >= self.timeout:
                result.append(join(members, complete=False))
                del self.first_seen[group]
        return result


def join(parts: list[Part], complete: bool = True) -> Assembled:
    """The parts of one SMS (a single one, or a group, some perhaps missing or stored twice).

    Each run of consecutive parts is decoded as one user data; a gap between runs (one or more
    missing parts) becomes one MISSING marker.
    """
    chosen: dict[int, Part] = {}
    for part in sorted(parts, key=lambda part: (part.number, part.pdu)):
        chosen.setdefault(part.number, part)
    ordered = [chosen[number] for number in sorted(chosen)]
    pieces: list[str] = []
    runs = groupby(range(1, parts[0].count + 1), key=lambda n: chosen[n].coding if n in chosen else None)
    for coding, numbers in runs:
        if coding is None:
            pieces.append(MISSING)
        else:
            pieces.append(decode_text(coding, b"".join(chosen[n].data for n in numbers)) or "")
    digest = hashlib.sha256("|".join(part.pdu for part in ordered).encode()).hexdigest()[:40]
    return Assembled(
        sender=ordered[0].sender,
        text="".join(pieces),
        sent_at=min((part.sent_at for part in ordered if part.sent_at is not None), default=None),
        indices=tuple(sorted(part.index for part in parts)),
        key=digest,
        complete=complete,
    )
