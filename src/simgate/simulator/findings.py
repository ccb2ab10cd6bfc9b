"""What a simulation found: activity counts, earnings, latencies and the partner checks.

A check counts what it looked at and what failed, and keeps a few examples of each failure,
so a red line in the report says what went wrong without a log dive.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

MAX_EXAMPLES = 5

MAX_SAMPLES = 50_000
"""Per call; beyond this a reservoir keeps the percentiles honest in bounded memory."""


class Severity(StrEnum):
    ERROR = "error"
    """Costs money or gets the farm blocked: fails the run."""
    WARNING = "warning"
    """Worth a look, but the marketplace would not sanction it."""


CATALOGUE: Mapping[str, tuple[str, Severity]] = {
    "counts_not_over_reported": (
        "no NO_NUMBERS right after advertising a count (30-minute block)",
        Severity.ERROR,
    ),
    "counts_within_farm": ("advertised counts never exceed the farm's free SIMs", Severity.ERROR),
    "any_is_total": ("`any` is at least the sum over the operators", Severity.ERROR),
    "numbers_offered_again": ("numbers are offered again once their operations end", Severity.WARNING),
    "no_number_issued_twice": ("no number issued twice while its operation is open", Severity.ERROR),
    "activation_ids_unique": ("activationId never reused", Severity.ERROR),
    "exclusions_honoured": ("exceptionPhoneSet prefixes honoured", Severity.ERROR),
    "issued_matches_order": ("issued number matches the order (country, operator, rent)", Severity.ERROR),
    "no_reissue_after_sale": (
        "no number issued for a service it is out of (sold, refused, cancelled 4 times)",
        Severity.ERROR,
    ),
    "answers_well_formed": ("answers in the documented shape (JSON numbers, status words)", Severity.ERROR),
    "finish_answered_success": ("every FINISH answered SUCCESS, repeats included", Severity.ERROR),
    "answers_within_deadline": (
        "every answer within the deadline (Onlinesim 10 s, SMSHUB 3 s)",
        Severity.ERROR,
    ),
    "answers_fast": ("answers under 1 s", Severity.WARNING),
    "pushes_well_formed": ("PUSH_SMS payloads well-formed (fields, types, key, endpoint)", Severity.ERROR),
    "no_duplicate_push": ("no SMS pushed twice (same operation, same text)", Severity.ERROR),
    "no_push_for_closed_or_unknown": ("no push for a closed or unknown operation", Severity.ERROR),
    "sms_id_stable": ("smsId: one per SMS, the same on every retry (agent protocol)", Severity.ERROR),
    "pings_well_formed": ("health-check pings well-formed (GET, no body, a User-Agent)", Severity.ERROR),
    "sms_pushed_exactly_once": ("every SMS for an open operation pushed exactly once", Severity.ERROR),
    "sms_routed_to_open_operation": (
        "SMS routed to the number's open operation, never a closed one",
        Severity.ERROR,
    ),
    "sms_text_intact": ("pushed text identical to the SMS received (Cyrillic, emoji, long)", Severity.ERROR),
    "intake_answers": ("intake stores new SMS (202) and recognises resends (200, duplicate)", Severity.ERROR),
    "no_sim_held_by_two_marketplaces": ("no SIM held by two marketplaces at once", Severity.ERROR),
    "counts_within_free_sims": (
        "all marketplaces' counts together never above the free SIMs",
        Severity.ERROR,
    ),
    "pushes_to_the_right_marketplace": (
        "every SMS pushed to the marketplace holding the number only",
        Severity.ERROR,
    ),
    "no_push_after_success_anywhere": ("no SMS pushed anywhere after a SUCCESS", Severity.ERROR),
    "no_resale_on_another_marketplace": (
        "a number sold for a service is not issued for it elsewhere",
        Severity.ERROR,
    ),
    "resale_window_kept": (
        "no number sold on HeroSMS issued elsewhere inside the resale window,"
        " nor one sold elsewhere on HeroSMS",
        Severity.ERROR,
    ),
}
"""Every check's title and severity, in the order the report shows them."""


@dataclass
class Check:
    name: str
    title: str
    severity: Severity = Severity.ERROR
    observed: int = 0
    failures: int = 0
    examples: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    """Benign observations next to the check (e.g. a push that crossed a FINISH)."""
    active: bool = True
    """False when the run could not perform it (e.g. no farm to compare counts with)."""

    def ok(self, count: int = 1) -> None:
        self.observed += count

    def fail(self, example: str) -> None:
        self.observed += 1
        self.failures += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    def note(self, what: str) -> None:
        self.notes[what] += 1

    @property
    def passed(self) -> bool:
        return self.failures == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "severity": self.severity.value,
            "active": self.active,
            "passed": self.passed,
            "observed": self.observed,
            "failures": self.failures,
            "examples": list(self.examples),
            "notes": dict(self.notes),
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Latencies:
    """Seconds per call name; bounded by reservoir sampling."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(default_factory=lambda: random.Random(1))

    def add(self, call: str, seconds: float) -> None:
        self.seen[call] += 1
        bucket = self.samples.setdefault(call, [])
        if len(bucket) < MAX_SAMPLES:
            bucket.append(seconds)
            return
        slot = self._rng.randrange(self.seen[call])
        if slot < MAX_SAMPLES:
            bucket[slot] = seconds

    def summary(self, call: str) -> dict[str, float]:
        ordered = sorted(self.samples.get(call, []))
        return {
            "count": float(self.seen[call]),
            "p50_ms": round(percentile(ordered, 0.5) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
        }

    def calls(self) -> list[str]:
        return sorted(self.samples)

    def merge(self, other: Latencies) -> None:
        for call in other.calls():
            for value in other.samples[call]:
                self.add(call, value)


@dataclass
class Report:
    title: str = "simulation"
    real_seconds: float = 0.0
    speed: float = 1.0
    counts: Counter[str] = field(default_factory=Counter)
    earnings_kopecks: int = 0
    """In hundredths of `currency`."""
    currency: str = "RUB"
    latencies: Latencies = field(default_factory=Latencies)
    checks: dict[str, Check] = field(default_factory=dict)
    sections: list[Report] = field(default_factory=list)
    """One report per marketplace when several sell one farm; this one then holds the SIM
    bank's checks and those across marketplaces, and passes only if every section does."""

    def check(self, name: str) -> Check:
        """The check called `name` (see CATALOGUE), created on first use."""
        if name not in self.checks:
            title, severity = CATALOGUE[name]
            self.checks[name] = Check(name, title, severity)
        return self.checks[name]

    def prepare(self, names: list[str] | None = None) -> None:
        """Create the checks in catalogue order so the report always lists them alike."""
        for name in names if names is not None else list(CATALOGUE):
            self.check(name)

    @property
    def earnings(self) -> dict[str, float]:
        """Per currency, this report's and its sections': amounts in two currencies never add."""
        totals: Counter[str] = Counter()
        for part in (self, *self.sections):
            totals[part.currency] += part.earnings_kopecks
        return {currency: hundredths / 100 for currency, hundredths in sorted(totals.items()) if hundredths}

    @property
    def earnings_rub(self) -> float:
        return self.earnings.get("RUB", 0.0)

    @property
    def ok(self) -> bool:
        own = all(c.passed for c in self.checks.values() if c.severity is Severity.ERROR)
        return own and all(section.ok for section in self.sections)

    @property
    def failed(self) -> list[Check]:
        own = [c for c in self.checks.values() if not c.passed and c.severity is Severity.ERROR]
        return own + [c for section in self.sections for c in section.failed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "ok": self.ok,
            "real_seconds": round(self.real_seconds, 3),
            "speed": self.speed,
            "simulated_seconds": round(self.real_seconds * self.speed, 1),
            "counts": dict(sorted(self.counts.items())),
            "earnings_rub": round(self.earnings_rub, 2),
            "earnings": {currency: round(amount, 2) for currency, amount in self.earnings.items()},
            "latency": {call: self.latencies.summary(call) for call in self.latencies.calls()},
            "checks": {name: check.to_dict() for name, check in self.checks.items()},
            **({"marketplaces": {s.title: s.to_dict() for s in self.sections}} if self.sections else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    def render(self) -> RenderableType:
        parts: list[RenderableType] = [
            activity_table(self),
            latency_table(self.latencies, f"{self.title}: answer latency"),
            checks_table(self),
        ]
        return Group(*parts, *(section.render() for section in self.sections))

    def print(self, console: Console) -> None:
        console.print(self.render())
        verdict = (
            Text("clean report: every partner check passed", style="bold green")
            if self.ok
            else Text(f"{len(self.failed)} partner check(s) failed", style="bold red")
        )
        console.print(verdict)


def activity_table(report: Report) -> Table:
    counts = report.counts
    table = Table(title=f"{report.title}: activity", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    simulated = report.real_seconds * report.speed
    table.add_row(
        "time", f"{report.real_seconds:.1f} s real, x{report.speed:g} = {simulated / 60:.1f} simulated min"
    )
    # With several marketplaces each section shows its own; a SIM bank orders nothing, and
    # rows of zero orders, pushes and FINISHes would only make the owner look for a fault.
    buying = not report.sections and bool(counts["order.sent"] or counts["services.polls"])
    for kind in ("activation", "rent") if buying else ():
        if kind == "rent" and not counts["rent.opened"]:
            continue  # none ordered (the agent protocol has no rent)
        finished = {k.rsplit(".", 1)[1]: v for k, v in counts.items() if k.startswith(f"{kind}.finished.")}
        row = ", ".join(f"{STATUS_WORDS.get(s, s)} {n}" for s, n in sorted(finished.items()))
        table.add_row(
            f"{kind}s",
            f"opened {counts[f'{kind}.opened']}, open now {counts[f'{kind}.open']}"
            + (f"; finished: {row}" if row else ""),
        )
    if buying:
        table.add_row(
            "orders",
            f"{counts['order.sent']} sent, {counts['order.no_numbers']} NO_NUMBERS, "
            f"{counts['order.skipped']} skipped (nothing advertised), {counts['services.polls']} polls",
        )
    if counts["sms.sent"] or report.sections:
        table.add_row(
            "SMS",
            f"{counts['sms.sent']} sent to intake: {counts['sms.routed']} routed to an operation, "
            f"{counts['sms.stray']} for idle numbers, {counts['sms.unrouted']} found no open operation; "
            f"{counts['sms.resent']} resent (same id)",
        )
    if buying:
        _buyer_rows(table, counts)
    if buying or report.sections or report.earnings:
        table.add_row("earnings", earnings_text(report.earnings))
    if counts["simulator.errors"]:
        errors = counts["simulator.errors"]
        table.add_row("simulator", Text(f"{errors} internal error(s): see the log", "red"))
    return table


def earnings_text(earnings: dict[str, float]) -> str:
    return " · ".join(f"{amount:,.2f} {currency}" for currency, amount in earnings.items()) or "0.00"


def _buyer_rows(table: Table, counts: Counter[str]) -> None:
    table.add_row(
        "pushes",
        f"{counts['push.received']} received: {counts['push.success']} SUCCESS, "
        f"{counts['push.ignored']} IGNORED, {counts['push.bad_service']} BAD_SERVICE, "
        f"{counts['push.no_operation']} NO_OPERATION, {counts['push.failed_on_purpose']} refused on purpose",
    )
    table.add_row(
        "finish",
        f"{counts['finish.sent']} sent, {counts['finish.resent']} resent after a slow or lost answer, "
        f"{counts['finish.repeated']} repeated on purpose",
    )


STATUS_WORDS = {"1": "not taken (1)", "3": "sold (3)", "4": "cancelled (4)", "5": "refunded (5)"}


def latency_table(latencies: Latencies, title: str = "answer latency") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("call", "count", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "call" else "right")
    for call in latencies.calls():
        s = latencies.summary(call)
        table.add_row(
            call, str(int(s["count"])), f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{s['max_ms']:.1f}"
        )
    return table


def checks_table(report: Report) -> Table:
    table = Table(title=f"{report.title}: partner checks", title_justify="left")
    table.add_column("", width=4)
    table.add_column("check")
    table.add_column("observed", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("examples / notes")
    for check in report.checks.values():
        if not check.active:
            why = "\n".join(check.notes) or "not run"  # a note says where it was made instead
            table.add_row(Text("-", style="dim"), check.title, "", "", Text(why, style="dim"))
            continue
        if check.passed:
            mark = Text("ok", style="green")
        elif check.severity is Severity.WARNING:
            mark = Text("warn", style="yellow")
        else:
            mark = Text("FAIL", style="bold red")
        details = list(check.examples)
        details += [f"{what}: {n}" for what, n in check.notes.most_common(3)]
        table.add_row(
            mark, check.title, str(check.observed), str(check.failures), Text("\n".join(details) or "")
        )
    return table
