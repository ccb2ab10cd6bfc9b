"""Plain records of the farm's state, as a repository reads them.

Frozen, so a record handed to a use case cannot drift from the row it came from. A change
(a number claimed, an operation finished) is a repository method inside a unit of work
(storage/ports.py); the rules in rules.py decide, the repositories write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from simgate.domain.types import (
    CountryName,
    Kopecks,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
    Timestamp,
)


class OperationKind(StrEnum):
    ACTIVATION = "activation"
    """One service, about 15 minutes (spec 5)."""
    RENT = "rent"
    """Any sender, one day to months (spec 6)."""


class FinishStatus(IntEnum):
    """FINISH_ACTIVATION `status` values documented by Onlinesim (spec 5.3)."""

    NOT_TAKEN = 1
    """Onlinesim: the number was not taken for this service (rent/activation mismatch)."""
    SOLD = 3
    CANCELLED = 4
    REFUNDED = 5


@dataclass(frozen=True, slots=True)
class NumberSpec:
    """One inventory row as the operator describes it (CSV import)."""

    phone: PhoneNumber
    country: CountryName
    operator: OperatorName
    port: str = ""
    rentable: bool = True
    enabled: bool = True
    marketplaces: frozenset[str] = frozenset()
    """The marketplaces that may sell this SIM; empty: every enabled one (CSV `marketplaces`)."""


@dataclass(frozen=True, slots=True)
class Number:
    id: NumberId
    phone: PhoneNumber
    country: CountryName
    operator: OperatorName
    port: str
    rentable: bool
    enabled: bool
    online: bool
    open_operation_id: OperationId | None
    last_issued_at: Timestamp | None = None
    file_enabled: bool = True
    """The CSV's `enabled` column, rewritten by every import."""
    operator_enabled: bool = True
    """The operator's switch (dashboard, `simgate numbers disable`): no import changes it.
    `enabled` is both together: only a SIM on in the file and not switched off is sold."""
    marketplaces: frozenset[str] = frozenset()
    """May be sold only there; empty: on every enabled marketplace."""
    lane: str | None = None
    """The one marketplace that counts and issues this SIM while it is free; None: unplaced."""
    lane_target: str | None = None
    """A pending move: the lane stops counting it (but may still issue it) until it joins this one."""
    lane_leaving_at: Timestamp | None = None
    """When the move became visible to every reader (stamped after its commit); None until then."""
    lane_moved_at: Timestamp | None = None
    """When it was last placed or marked leaving (None: before migration 0015, long ago). With
    `last_issued_at` it says how long the SIM has sat in its lane unsold (lanes.idle_since).
    The SQL stores compute that in SQL and leave it None in the Numbers they load, so code
    written before migration 0015 (the migration tests) still reads a number."""

    @property
    def leaving(self) -> bool:
        return self.lane_target is not None

    @property
    def busy(self) -> bool:
        return self.open_operation_id is not None

    @property
    def state(self) -> str:
        """One word for tables and filters: disabled, offline, busy or free."""
        if not self.enabled:
            return "disabled"
        if not self.online:
            return "offline"
        return "busy" if self.busy else "free"


@dataclass(frozen=True, slots=True)
class Order:
    """What a GET_NUMBER asks for, already normalised."""

    kind: OperationKind
    country: CountryName
    operator: OperatorName
    """ANY_OPERATOR matches every operator of the country, including unknown ones."""
    service: ServiceName | None
    """None for rent: a rent receives SMS from every sender (spec 6.2)."""
    exception_prefixes: tuple[str, ...] = ()
    offered: Kopecks | None = None
    """Hundredths of `currency`: what the marketplace says this sale pays."""
    currency: str = "RUB"
    """ISO 4217 letters; Onlinesim pays in RUB, the agent protocol names 643 (RUB) or 840 (USD)."""


@dataclass(frozen=True, slots=True)
class Marketplace:
    """A marketplace as storage keeps it: whether it sells now, and its lane bookkeeping."""

    name: str
    enabled: bool
    weight: float = 1.0
    """The owner's thumb on the scale: a lane's target share is weight x (1 + demand)."""
    last_services_at: Timestamp | None = None
    """`asked_at` of the newest GET_SERVICES answer recorded for it."""
    countries: frozenset[str] | None = None
    """The countries it has a name for (None: every one); its plug-in says, storage does not
    keep it. A SIM of another country in its lane would never be advertised."""


@dataclass(frozen=True, slots=True)
class FinishPolicy:
    """What one protocol's FINISH statuses mean for offering the number again.

    Onlinesim's status 1 is a rent/activation mix-up and blocks nothing (the default). The
    agent protocol's status 1 means "never supply this number for this service again", and
    its status 4 lets the number be offered again for that service on that marketplace at
    most `retry_budget` more times (SMSHUB §5.3, §7.2).
    """

    refuse_statuses: frozenset[int] = frozenset()
    """Statuses that remove (number, service) everywhere, like a sale does."""
    retry_budget_status: int | None = None
    retry_budget: int = 0


@dataclass(frozen=True, slots=True)
class Operation:
    id: OperationId
    marketplace: str
    kind: OperationKind
    number_id: NumberId
    phone: PhoneNumber
    country: CountryName
    operator: OperatorName
    service: ServiceName | None
    offered: Kopecks | None
    opened_at: Timestamp
    finished_at: Timestamp | None = None
    finish_status: int | None = None
    final: Kopecks | None = None
    currency: str = "RUB"
    """Of `offered` and `final`."""

    @property
    def is_open(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True, slots=True)
class ExclusionFact:
    """One exclusion as stored: what it hides, where, why, since when, and what caused it."""

    service: ServiceName
    marketplace: str
    """'*': every marketplace."""
    reason: str
    """sold, group, refused, retries (the marketplace's) or blocked (the operator's)."""
    created_at: Timestamp
    operation_id: OperationId | None = None


@dataclass(frozen=True, slots=True)
class GroupCount:
    """Free numbers in one (country, operator) group, as storage tallies them."""

    country: CountryName
    operator: OperatorName
    free: int
    """Enabled, online, not busy."""
    rentable: int
    """Of those, the ones that may be rented."""


@dataclass(frozen=True, slots=True)
class ExcludedCount:
    """Free numbers of one group that must not be offered for one service (sold or blocked)."""

    country: CountryName
    operator: OperatorName
    service: ServiceName
    excluded: int


@dataclass(frozen=True, slots=True)
class GroupAvailability:
    """One group's free numbers a marketplace counts, with those of them excluded per service:
    a GroupCount and its ExcludedCounts read together (GET_SERVICES' one query)."""

    country: CountryName
    operator: OperatorName
    free: int
    rentable: int
    excluded: Mapping[ServiceName, int]
    """Only services with a positive count: any other has none excluded."""


ServiceCounts = dict[ServiceName, int]
OperatorMap = dict[OperatorName, ServiceCounts]


@dataclass(frozen=True, slots=True)
class CountryAvailability:
    country: CountryName
    operator_map: OperatorMap = field(default_factory=dict)
