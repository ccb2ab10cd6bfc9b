"""The partner checks one marketplace can make from its own ledger (spec 5-8).

What gets a farm blocked or costs it money: over-reported counts, numbers issued twice,
ignored exclusions, a number that does not match the order, malformed answers, pushes after
FINISH. Every judgement is conservative on races: a check fails only on evidence that no
ordering of concurrent calls explains.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from simgate.simulator.client import CallResult
from simgate.simulator.farm import SimCard
from simgate.simulator.findings import Report
from simgate.simulator.groups import group_hidden
from simgate.simulator.ledger import Counts, Ledger, MarketOp, Push, Snapshot, country_totals
from simgate.simulator.protocol import Names, ProtocolName

CANCEL_BUDGET = 4
"""Agent protocol, status 4: the number may be offered "3 more times (that is only 4 times
in total)" for that service on that marketplace (spec smshub-agent 5.3, 7.2)."""


class PartnerChecks:
    def __init__(
        self,
        report: Report,
        ledger: Ledger,
        farm: Mapping[str, SimCard] | None,
        *,
        crossed_grace: float,
        protocol: ProtocolName = "onlinesim",
        names: Names | None = None,
        marketplace: str = "onlinesim",
    ) -> None:
        self.report = report
        self.ledger = ledger
        self.farm = farm
        self.protocol = protocol
        self.names = names or Names()
        self.marketplace = marketplace
        self.crossed_grace = crossed_grace
        """A push this soon after our FINISH crossed it on the wire: not the partner's fault."""

    def shape(self, ok: bool, example: str) -> None:
        check = self.report.check("answers_well_formed")
        if ok:
            check.ok()
        else:
            check.fail(example)

    # ------------------------------------------------------------------ GET_SERVICES

    def services_answer(self, endpoint: str, result: CallResult) -> Counts | None:
        """The counts of a GET_SERVICES answer, or None (and a failure) if it is malformed."""
        if result.error is not None:
            if result.error != "timeout":
                self.shape(False, f"{endpoint}: {result.error}")
            return None
        body = result.body
        if result.status != 200 or body is None or result.word != "SUCCESS":
            self.shape(False, f"{endpoint}: HTTP {result.status} {str(body)[:120]}")
            return None
        countries = body.get("countryList")
        if not isinstance(countries, list):
            self.shape(False, f"{endpoint}: countryList is not a list")
            return None
        counts: Counts = {}
        for entry in countries:
            name = entry.get("country") if isinstance(entry, dict) else None
            operators = entry.get("operatorMap") if isinstance(entry, dict) else None
            # Onlinesim: `any` is mandatory; agent protocol: `any` or named operators, never both.
            any_missing = self.protocol == "onlinesim" and "any" not in (operators or {})
            if not isinstance(name, str) or not isinstance(operators, dict) or any_missing:
                self.shape(False, f"{endpoint}: bad countryList entry {str(entry)[:120]}")
                continue
            if self.protocol == "agent" and "any" in operators and len(operators) > 1:
                self.shape(False, f"{endpoint}: {name} has `any` beside named operators")
            for operator, services in operators.items():
                if not isinstance(services, dict):
                    self.shape(False, f"{endpoint}: {name}/{operator} is not an object")
                    continue
                for service, count in services.items():
                    if type(count) is not int or count < 0:
                        self.shape(False, f"{endpoint}: {name}/{operator}/{service} = {count!r}")
                        continue
                    counts[(name, str(operator), str(service))] = count
        self.shape(True, "")
        if endpoint == "getServicesRent" and counts and not any(k[2] == "rent" for k in counts):
            self.shape(False, "getServicesRent: no `rent` counts in the operator maps")
        return counts

    def any_is_total(self, endpoint: str, counts: Counts) -> None:
        totals: Counter[tuple[str, str]] = Counter()
        for (country, operator, service), count in counts.items():
            if operator != "any":
                totals[(country, service)] += count
        check = self.report.check("any_is_total")
        for (country, service), total in totals.items():
            advertised = counts.get((country, "any", service), 0)
            if advertised < total:
                check.fail(f"{endpoint}: {country}/any/{service} = {advertised} < {total} over operators")
            else:
                check.ok()

    def within_farm(self, snapshot: Snapshot, *, rent: bool) -> None:
        """Counts may not exceed the farm's SIMs that were free throughout the call.

        Conservative on every race: an operation counts as busy only if it was issued
        before the poll started and not finished before it was answered; a sale removes a
        number from its service only once confirmed before the poll started.
        """
        assert self.farm is not None
        busy = {phone for phone, op in self.ledger.held.items() if op.issued_at <= snapshot.started}
        gone: dict[str, set[str]] = {}
        for phone, service in {*self.ledger.sold, *self.ledger.cancels}:
            if self.ledger.gone(phone, service, snapshot.started, budget=self._budget):
                gone.setdefault(service, set()).add(phone)
        groups: dict[tuple[str, str], set[str]] = {}
        rentable: dict[tuple[str, str], set[str]] = {}
        for card in self.farm.values():
            if not card.enabled:
                continue
            for operator in {card.operator or "any", "any"}:
                groups.setdefault((card.country, operator), set()).add(card.phone)
                if card.rentable:
                    rentable.setdefault((card.country, operator), set()).add(card.phone)
        check = self.report.check("counts_within_farm")
        names = self.names
        for (country, operator, service), advertised in snapshot.counts.items():
            group = (names.country(country), names.operator(operator))
            if service == "rent":
                free = rentable.get(group, set()) - busy
            else:
                free = groups.get(group, set()) - busy - gone.get(service, set())
            if advertised > len(free):
                check.fail(
                    f"{country}/{operator}/{service}: advertised {advertised}, the farm had {len(free)} free"
                )
            else:
                check.ok()

    # ------------------------------------------------------------------ GET_NUMBER

    def no_numbers(
        self,
        country: str,
        operator: str,
        service: str,
        snapshot: Snapshot | None,
        exceptions: list[int | str] | None,
    ) -> None:
        """Over-reporting (spec 5.1): NO_NUMBERS where the last count promised a number.

        Every GET_NUMBER in the same country since the poll started (or still in flight)
        may have taken the advertised number, so only a count larger than all of them
        proves the lie; an order with exclusions proves nothing.
        """
        check = self.report.check("counts_not_over_reported")
        if snapshot is None or exceptions:
            check.note("NO_NUMBERS with exclusions or no count")
            return
        advertised = snapshot.counts.get((country, operator, service), 0)
        ledger = self.ledger
        consumed = ledger.consumed[country] - snapshot.consumed_at_start[country] + ledger.inflight[country]
        left = advertised - consumed
        if left > 0:
            age = time.monotonic() - snapshot.answered
            check.fail(
                f"{country}/{operator}/{service}: advertised {advertised}, NO_NUMBERS {age:.2f} s later "
                f"with {consumed} competing order(s)"
            )
        else:
            check.ok()
            check.note("NO_NUMBERS after the stock was taken by other orders")

    @property
    def _budget(self) -> int | None:
        return CANCEL_BUDGET if self.protocol == "agent" else None

    def issued(self, op: MarketOp, exceptions: Iterable[int | str] | None) -> bool:
        """Judge a number just issued; False if it cannot be tracked (its id is taken)."""
        report, ledger = self.report, self.ledger
        ids = report.check("activation_ids_unique")
        if op.id in ledger.ops:
            ids.fail(f"activationId {op.id} issued again ({op.phone}; first {ledger.ops[op.id].phone})")
            return False
        ids.ok()
        twice = report.check("no_number_issued_twice")
        other = ledger.held.get(op.phone)
        if other is not None:
            twice.fail(f"{op.phone} issued as {op.id} while {other.id} is open")
        else:
            twice.ok()
        prefixes = [str(p) for p in exceptions or ()]
        excluded = report.check("exclusions_honoured")
        if prefixes:
            hit = next((p for p in prefixes if op.phone.startswith(p)), None)
            if hit is not None:
                excluded.fail(f"{op.phone} issued although exceptionPhoneSet has {hit}")
            else:
                excluded.ok()
        self._matches_order(op)
        if op.service is not None:
            again = report.check("no_reissue_after_sale")
            if ledger.gone(op.phone, op.service, op.requested_at, budget=self._budget):
                again.fail(f"{op.phone} issued for {op.service} after {self._why_gone(op.phone, op.service)}")
            else:
                again.ok()
        return True

    def _why_gone(self, phone: str, service: str) -> str:
        if (phone, service) in self.ledger.sold:
            return "it was sold (or refused) for it"
        return f"{len(self.ledger.cancels.get((phone, service), ()))} cancellations (status 4)"

    def _matches_order(self, op: MarketOp) -> None:
        check = self.report.check("issued_matches_order")
        if self.farm is None:
            return
        card = self.farm.get(op.phone)
        problem = None
        if card is None:
            problem = f"{op.phone} is not a SIM of the farm"
        elif card.country != self.names.country(op.country):
            problem = f"{op.phone} is in {card.country}, ordered {op.country}"
        elif op.operator != "any" and card.operator != self.names.operator(op.operator):
            problem = f"{op.phone} is {card.operator or 'unknown'}, ordered {op.operator}"
        elif op.kind == "rent" and not card.rentable:
            problem = f"{op.phone} rented although its rent flag is 0"
        elif not card.enabled:
            problem = f"{op.phone} issued although disabled"
        elif not card.sold_on(self.marketplace):
            problem = f"{op.phone} issued on {self.marketplace}, but its CSV row says {card.marketplaces}"
        if problem:
            check.fail(problem)
        else:
            check.ok()

    # ------------------------------------------------------------------ the verdict

    def offered_again(self, snapshot: Snapshot | None, services: Iterable[str]) -> None:
        """After every operation ended: each number not sold for a service is offered again."""
        check = self.report.check("numbers_offered_again")
        if self.farm is None or snapshot is None or not check.active:
            return
        if self.ledger.held or self.ledger.unknown_outcomes:
            check.note("skipped: some operations' state is unknown")
            return
        # Only services the partner offered here at all: it names only some (spec multi 7).
        seen = {key[2] for poll in self.ledger.polls for key in poll.counts}
        wanted = set(services) & seen
        expected: Counter[tuple[str, str, str]] = Counter()
        end = float("inf")
        sold = {(phone, self.names.service(service)) for phone, service in self.ledger.sold}
        hidden = group_hidden(sold, {card.phone: card.country for card in self.farm.values()})
        for card in self.farm.values():
            if not card.enabled:
                continue
            for operator in {card.operator or "any", "any"}:
                for service in wanted:
                    if (card.phone, self.names.service(service)) in hidden:
                        continue  # an exclusion group hides it (README, "Resale windows ...")
                    if not self.ledger.gone(card.phone, service, end, budget=self._budget):
                        expected[(card.country, operator, service)] += 1
        names = self.names
        offered = {(names.country(c), names.operator(o), s): n for (c, o, s), n in snapshot.counts.items()}
        if self.protocol == "agent":
            # Named operators or `any` per country, the partner's choice: compare totals.
            offered = {(c, "any", s): n for (c, s), n in country_totals(offered).items()}
            expected = Counter({k: n for k, n in expected.items() if k[1] == "any"})
        for key, count in expected.items():
            advertised = offered.get(key, 0)
            if advertised < count:
                check.fail(f"{'/'.join(key)}: {advertised} offered, {count} free")
            else:
                check.ok()

    def pushes_after_finish(self, crossed: Callable[[Push, MarketOp], bool | None] | None) -> None:
        """Judge pushes that came after our FINISH; `crossed` (from the SIM bank's ledger)
        says whether the SMS reached the partner before the FINISH did (None: unknown)."""
        check = self.report.check("no_push_for_closed_or_unknown")
        for push in self.ledger.pushes:
            op = self.ledger.ops.get(push.op_id) if push.op_id is not None else None
            if op is None or op.finish_sent_at is None or push.at < op.finish_sent_at:
                continue
            verdict = crossed(push, op) if crossed is not None else None
            if verdict is None:
                verdict = push.at - op.finish_sent_at <= self.crossed_grace
            if verdict:
                check.note("push crossed our FINISH on the wire")
            else:
                check.fail(
                    f"push for {op.id} ({push.text[:30]!r}) {push.at - op.finish_sent_at:.2f} s after FINISH"
                )
