"""The simulators' own parts: farm, push validation, over-report judgement, report, layering."""

from __future__ import annotations

import ast
import io
from collections import Counter
from pathlib import Path

import phonenumbers
import pytest
from typer.testing import CliRunner

import simgate.simulator
from simgate import catalogue
from simgate.cli import app
from simgate.services.inventory import parse_csv
from simgate.services.phones import normalise_phone
from simgate.simulator import texts
from simgate.simulator.farm import RANGES, make_farm, read_csv, write_csv
from simgate.simulator.findings import CATALOGUE, Latencies, Report, percentile
from simgate.simulator.ledger import Snapshot
from simgate.simulator.market_config import MarketplaceConfig
from simgate.simulator.marketplace import MarketplaceSimulator
from simgate.simulator.pushes import validate_push

KEY = "k3y"
HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "simgate/1",
    "Authorization": f"Bearer {KEY}",
}
GOOD = (
    b'{"action":"PUSH_SMS","key":"k3y","smsId":355,"phone":"79088081050",'
    b'"phoneFrom":"Instagram","text":"Your code is 800142 \\ud83d\\ude00"}'
)


# ---------------------------------------------------------------------- farm


def test_every_farm_number_is_a_valid_number_of_its_country() -> None:
    regions = catalogue.countries()
    cards = make_farm(400, seed=3)
    assert len({card.phone for card in cards}) == 400
    assert {card.country for card in cards} == set(RANGES)
    for card in cards:
        assert normalise_phone(card.phone, regions[card.country]) == card.phone
        assert phonenumbers.is_valid_number(phonenumbers.parse("+" + card.phone))


def test_the_same_seed_gives_the_same_farm() -> None:
    assert make_farm(50, seed=9) == make_farm(50, seed=9)
    assert make_farm(50, seed=9) != make_farm(50, seed=10)


def test_the_farm_csv_loads_with_the_servers_parser_and_reads_back() -> None:
    cards = make_farm(120, seed=5)
    text = io.StringIO()
    write_csv(cards, text)

    specs, rejected = parse_csv(io.StringIO(text.getvalue()))
    back = read_csv(io.StringIO(text.getvalue()))

    assert rejected == []
    assert [spec.phone for spec in specs] == [card.phone for card in cards]
    assert back == cards
    assert any(not card.operator for card in cards)  # some SIMs counted under `any` only
    assert any(not card.rentable for card in cards)


def test_an_unknown_country_is_refused() -> None:
    with pytest.raises(ValueError, match="atlantis"):
        make_farm(3, countries=(("atlantis", 1.0),))


# ---------------------------------------------------------------------- texts


def test_code_sms_belong_to_their_service_and_not_to_others() -> None:
    import random

    rng = random.Random(4)
    for service in ("telegram", "vkcom", "whatsapp", "avito", "openai"):
        sender, text = texts.verification(rng, service)
        assert texts.belongs_to(service, sender, text)
        assert not texts.belongs_to("tinder", sender, text)


# ---------------------------------------------------------------------- push validation


def test_a_documented_push_is_well_formed() -> None:
    payload, problems = validate_push(GOOD, HEADERS, KEY, rent_path=False)
    assert problems == []
    assert payload is not None
    assert payload["text"].endswith("\U0001f600")


@pytest.mark.parametrize(
    ("body", "rent_path", "problem"),
    [
        (
            GOOD.replace(b'"phone":"79088081050"', b'"phone":79088081050'),
            False,
            "phone 79088081050 is not a string",
        ),
        (GOOD.replace(b'"phone":"79088081050"', b'"phone":"+79088081050"'), False, "not digits"),
        (GOOD.replace(b'"smsId":355', b'"smsId":"355"'), False, "smsId '355'"),
        (GOOD.replace(b'"smsId":355', b'"smsId":true'), False, "smsId True"),
        (GOOD.replace(b',"phoneFrom":"Instagram"', b""), False, "missing phoneFrom"),
        (GOOD.replace(b'"key":"k3y"', b'"key":"nope"'), False, "wrong key"),
        (GOOD.replace(b'"action":"PUSH_SMS"', b'"action":"PUSH_SMS_RENT"'), False, "action"),
        (GOOD, True, "on the rent URL"),
        (GOOD.replace(b'{"action"', b'{"service":"rent","action"'), False, "rent push on the activation URL"),
        (b"[1, 2]", False, "not a JSON object"),
        (b"{nope", False, "not JSON"),
    ],
)
def test_malformed_pushes_are_named(body: bytes, rent_path: bool, problem: str) -> None:
    _, problems = validate_push(body, HEADERS, KEY, rent_path=rent_path)
    assert any(problem in p for p in problems), problems


def test_a_rent_push_says_rent_in_either_case() -> None:
    for word in (b"rent", b"RENT"):
        body = GOOD.replace(b'{"action"', b'{"service":"' + word + b'","action"')
        assert validate_push(body, HEADERS, KEY, rent_path=True)[1] == []


def test_wrong_headers_are_named() -> None:
    headers = {"Content-Type": "text/plain", "Authorization": "Bearer apiKey"}
    _, problems = validate_push(GOOD, headers, KEY, rent_path=False)
    assert set(problems) == {"Content-Type 'text/plain'", "no User-Agent", "wrong Authorization header"}


# ---------------------------------------------------------------------- over-reporting


def judge(
    advertised: int, *, competing: int, inflight: int = 0, exceptions: list[int | str] | None = None
) -> Report:
    market = MarketplaceSimulator(MarketplaceConfig(server_url="http://127.0.0.1:1", key=KEY))
    snapshot = Snapshot(0.0, 0.0, {("russia", "any", "telegram"): advertised}, Counter({"russia": 5}))
    market.ledger.consumed["russia"] = 5 + competing
    market.ledger.inflight["russia"] = inflight
    market.checks.no_numbers("russia", "any", "telegram", snapshot, exceptions)
    return market.report


def test_no_numbers_after_an_uncontested_count_is_over_reporting() -> None:
    check = judge(2, competing=1).checks["counts_not_over_reported"]
    assert check.failures == 1
    assert "advertised 2" in check.examples[0]


@pytest.mark.parametrize(
    ("competing", "inflight", "exceptions"), [(2, 0, None), (1, 1, None), (0, 3, None), (0, 0, [7928])]
)
def test_no_numbers_after_a_race_or_with_exclusions_is_not(
    competing: int, inflight: int, exceptions: list[int | str] | None
) -> None:
    check = judge(2, competing=competing, inflight=inflight, exceptions=exceptions).checks[
        "counts_not_over_reported"
    ]
    assert check.failures == 0


# ---------------------------------------------------------------------- report


def test_percentiles_and_a_bounded_reservoir() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    latencies = Latencies()
    for i in range(60_000):
        latencies.add("getNumber", i / 1000)
    assert len(latencies.samples["getNumber"]) == 50_000
    assert latencies.summary("getNumber")["count"] == 60_000


def test_a_warning_does_not_fail_the_report_but_an_error_does() -> None:
    report = Report()
    report.prepare()
    assert list(report.checks) == list(CATALOGUE)
    report.check("answers_fast").fail("getNumber: answered in 1.20 s")
    assert report.ok
    report.check("no_duplicate_push").fail("pushed twice")
    assert not report.ok
    assert [c.name for c in report.failed] == ["no_duplicate_push"]
    assert report.to_dict()["checks"]["no_duplicate_push"]["examples"] == ["pushed twice"]


def rendered(report: Report) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    report.print(console)
    return console.export_text()


def test_the_report_accounts_for_every_sms_sent() -> None:
    """The owner adds the parts up: routed, for idle numbers and unroutable make the total."""
    report = Report()
    report.prepare()
    report.counts.update(
        {"sms.sent": 50, "sms.routed": 40, "sms.stray": 6, "sms.unrouted": 4, "sms.resent": 3}
    )
    assert (
        "50 sent to intake: 40 routed to an operation, 6 for idle numbers, 4 found no open operation; "
        "3 resent (same id)"
    ) in rendered(report)


def test_a_check_made_elsewhere_says_where_instead_of_not_run() -> None:
    report = Report()
    report.prepare()
    moved = report.check("numbers_offered_again")
    moved.active = False
    moved.note("checked across all marketplaces together, above")
    report.check("answers_fast").active = False
    text = rendered(report)
    assert "checked across all marketplaces together, above" in text
    assert "not run" in text  # a check no one made still says so


# ---------------------------------------------------------------------- layering and CLI


def test_the_simulator_talks_to_simgate_only_over_http() -> None:
    """DESIGN.md: no storage, services (but normalise_phone's module), delivery or server."""
    allowed = ("simgate.simulator", "simgate.domain")
    folder = Path(simgate.simulator.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("simgate"):
                assert node.module.startswith(allowed), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("simgate") or alias.name.startswith(allowed), alias.name


def test_simbank_writes_the_inventory_csv(tmp_path: Path) -> None:
    target = tmp_path / "farm.csv"
    result = CliRunner().invoke(
        app, ["simulate", "simbank", "--numbers", "12", "--write-csv", str(target), "--csv-only"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 12 SIMs" in result.output
    assert parse_csv(io.StringIO(target.read_text()))[1] == []


@pytest.mark.parametrize(
    "arguments",
    [
        ["simulate", "marketplace", "--key", "k", "--server", "http://10.1.2.3:8080"],
        ["simulate", "marketplace", "--key", "k", "--push-host", "0.0.0.0"],
        ["simulate", "simbank", "--token", "t", "--server", "http://example.com"],
        ["simulate", "load", "--key", "k", "--server", "ftp://127.0.0.1"],
    ],
)
def test_the_simulators_stay_on_loopback(arguments: list[str]) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert "loopback" in result.output or "http://" in result.output


def test_the_marketplace_simulator_knows_its_protocols() -> None:
    result = CliRunner().invoke(app, ["simulate", "marketplace", "--key", "k", "--protocol", "ebay"])
    assert result.exit_code == 2
    assert "onlinesim, smshub" in result.output


def test_the_demo_enables_each_simulated_marketplace_with_its_key_and_push_url() -> None:
    from simgate.demo import DemoError, parse_marketplaces, server_environment

    assert parse_marketplaces(" onlinesim, SMSHUB,onlinesim") == ("onlinesim", "smshub")
    with pytest.raises(DemoError, match="ebay"):
        parse_marketplaces("onlinesim,ebay")
    environ = server_environment(
        keys={"onlinesim": "k1", "smshub": "k2"},
        push_urls={"onlinesim": "http://127.0.0.1:1", "smshub": "http://127.0.0.1:2/agent/api/sms"},
        intake="i", admin="a", speed=10,
    )  # fmt: skip
    assert environ["SIMGATE_ONLINESIM_KEY"] == "k1"
    assert environ["SIMGATE_SMSHUB_KEY"] == "k2"
    assert environ["SIMGATE_SMSHUB_PUSH_URL"] == "http://127.0.0.1:2/agent/api/sms"
    assert environ["SIMGATE_PUSH_RETRY_SECONDS"] == "1"


def test_dedicated_sims_are_written_to_the_csv_and_judged_per_marketplace() -> None:
    from simgate.simulator.farm import dedicate
    from simgate.simulator.ledger import MarketOp

    cards = dedicate(make_farm(200, seed=2), ("onlinesim", "smshub"), 0.15, seed=3)
    only = Counter(card.marketplaces for card in cards)
    assert set(only) == {"", "onlinesim", "smshub"}
    assert 15 <= only["smshub"] <= 50
    text = io.StringIO()
    write_csv(cards, text)
    assert read_csv(io.StringIO(text.getvalue())) == cards
    _, rejected = parse_csv(io.StringIO(text.getvalue()))
    assert rejected == []

    pinned = next(card for card in cards if card.marketplaces == "smshub")
    market = MarketplaceSimulator(MarketplaceConfig(server_url="http://127.0.0.1:1", key=KEY), farm=cards)
    op = MarketOp(1, "activation", pinned.country, "any", "telegram", pinned.phone, 100, 1.0, 1.1)
    market.checks.issued(op, None)
    check = market.report.checks["issued_matches_order"]
    assert check.failures == 1
    assert "its CSV row says smshub" in check.examples[0]


def test_a_sim_bank_report_shows_no_rows_of_a_buyer_it_is_not() -> None:
    report = Report(title="SIM bank")
    report.prepare()
    report.counts.update({"sms.sent": 5, "sms.routed": 5})
    text = rendered(report)
    assert "5 sent to intake" in text
    for buyer_row in ("orders", "pushes", "finish", "earnings", "activations"):
        assert f"│ {buyer_row}" not in text, text
