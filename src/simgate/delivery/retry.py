"""When to try a push again, and when to stop: a small pure value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from simgate.domain.messages import DueDelivery, Horizon, Verdict
from simgate.domain.model import OperationKind
from simgate.domain.types import Timestamp


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    delay: float = 10.0
    """Spec 5.4: resend the same payload after 10 seconds (SIMGATE_PUSH_RETRY_SECONDS)."""
    activation_window: float = 20 * 60.0
    rent_window: float = 7 * 24 * 3600.0
    finished_grace: float = 120.0
    """The default horizon (domain.messages.Horizon)."""
    horizons: Mapping[str, Horizon] = field(default_factory=dict)
    """Marketplaces whose horizon differs from the default, by name."""

    def next_attempt(self, now: Timestamp) -> Timestamp:
        return now + self.delay

    def horizon(self, marketplace: str) -> Horizon:
        default = Horizon(self.activation_window, self.rent_window, self.finished_grace)
        return self.horizons.get(marketplace, default)

    def give_up_reason(self, item: DueDelivery, now: Timestamp) -> str | None:
        """Why a failed push should not be tried again, or None to retry.

        Bounded by the operation's life: once the marketplace closed it, it answers
        NO_OPERATION at best, and a late SMS is worth nothing to the buyer.
        """
        horizon = self.horizon(item.marketplace)
        finished = item.operation_finished_at
        if finished is not None and now >= finished + horizon.finished_grace:
            return "operation finished"
        rent = item.kind is OperationKind.RENT
        window = horizon.rent_window if rent else horizon.activation_window
        if now >= item.created_at + window:
            return f"undelivered for {int(window // 60)} minutes"
        return None

    def after(self, verdict: Verdict, item: DueDelivery, now: Timestamp) -> tuple[str, str | None]:
        """The delivery's next state ('delivered', 'rejected', 'given_up', 'pending')."""
        if verdict is Verdict.DELIVERED:
            return "delivered", None
        if verdict is Verdict.REJECTED:
            return "rejected", None
        reason = self.give_up_reason(item, now)
        return ("given_up", reason) if reason else ("pending", None)
