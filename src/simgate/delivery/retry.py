"""When to try a push again, and when to stop: a small pure value."""

from __future__ import annotations

from dataclasses import dataclass

from simgate.domain.messages import DueDelivery, Verdict
from simgate.domain.model import OperationKind
from simgate.domain.types import Timestamp


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    delay: float = 10.0
    """Spec 5.4: resend the same payload after 10 seconds (SIMGATE_PUSH_RETRY_SECONDS)."""
    activation_window: float = 20 * 60.0
    """An activation lasts 15 minutes; past 20 the marketplace has closed it on its side."""
    rent_window: float = 7 * 24 * 3600.0
    """A rent can last months, but an SMS undelivered for a week has lost its buyer."""
    finished_grace: float = 120.0
    """After our FINISH arrives, keep trying briefly: the push may have crossed it."""

    def next_attempt(self, now: Timestamp) -> Timestamp:
        return now + self.delay

    def give_up_reason(self, item: DueDelivery, now: Timestamp) -> str | None:
        """Why a failed push should not be tried again, or None to retry.

        Bounded by the operation's life: once the marketplace closed it, it answers
        NO_OPERATION at best, and a late SMS is worth nothing to the buyer.
        """
        finished = item.operation_finished_at
        if finished is not None and now >= finished + self.finished_grace:
            return "operation finished"
        window = self.rent_window if item.kind is OperationKind.RENT else self.activation_window
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
