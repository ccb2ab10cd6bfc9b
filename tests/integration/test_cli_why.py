"""`simgate numbers why PHONE` and `earnings --by marketplace` through the real console script."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from simgate.config import load_settings
from simgate.domain.model import FinishPolicy
from simgate.domain.types import Kopecks, ServiceName
from simgate.services.inventory import import_numbers
from simgate.services.lanes import register_marketplaces
from simgate.services.operations import finish_operation, issue_number
from simgate.storage import schema
from simgate.storage.sqlite import SQLiteStore
from tests.factories import make_order, make_spec
from tests.integration.test_cli import run

pytestmark = pytest.mark.slow


def test_why_names_the_group_the_resale_window_and_the_lane(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'simgate.db'}"
    schema.upgrade(url)
    # What the CLI reads: the shipped groups, HeroSMS's window.
    store = SQLiteStore.from_url(url, ledger=load_settings({}).ledger)
    spec = make_spec(marketplaces=frozenset({"herosms"}))
    try:
        now = time.time()
        store.run(lambda uow: register_marketplaces(uow, ["onlinesim", "herosms"], now))
        store.run(lambda uow: import_numbers(uow, [spec], now))
        sold = store.run(
            lambda uow: issue_number(uow, "herosms", make_order(service=ServiceName("whatsapp")), now)
        )
        assert sold is not None
        store.run(lambda uow: finish_operation(uow, "herosms", sold.id, 3, None, now, FinishPolicy()))
    finally:
        store.close()
    answer = run(tmp_path, "numbers", "why", "+" + spec.phone, "--service", "astropay")
    assert answer.returncode == 0, answer.stderr
    lines = answer.stdout.splitlines()
    assert lines[0] == "herosms: not offered for astropay"
    assert lines[1].startswith(
        "  - excluded from astropay by group whatsapp+astropay: sold for whatsapp on herosms"
    )
    assert "onlinesim: not offered for astropay" in lines
    assert "  - not allowed on onlinesim by its CSV marketplaces (herosms)" in lines
    assert any(line.startswith("  - resale window of herosms's terms until ") for line in lines)
    as_json = json.loads(
        run(tmp_path, "numbers", "why", spec.phone, "--marketplace", "herosms", "--json").stdout
    )
    assert [r["rule"] for r in as_json["herosms"]] == ["group", "sold"]
    unknown = run(tmp_path, "numbers", "why", spec.phone, "--marketplace", "nowhere")
    assert unknown.returncode == 1
    assert "nowhere is not a marketplace this farm has sold on" in unknown.stderr
    missing = run(tmp_path, "numbers", "why", "+79990000000")
    assert missing.returncode == 1
    assert "is not in the inventory" in missing.stderr


def test_earnings_by_marketplace_are_side_by_side_per_currency(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'simgate.db'}"
    schema.upgrade(url)
    store = SQLiteStore.from_url(url)
    try:
        now = time.time()
        store.run(lambda uow: register_marketplaces(uow, ["onlinesim", "smshub"], now))
        specs = [
            make_spec(marketplaces=frozenset({"onlinesim"})),
            make_spec(marketplaces=frozenset({"smshub"})),
        ]
        store.run(lambda uow: import_numbers(uow, specs, now))
        for market, order in (
            ("onlinesim", make_order(offered=Kopecks(1250))),
            ("smshub", make_order(offered=Kopecks(35), currency="USD")),
        ):
            sold = store.run(lambda uow, m=market, o=order: issue_number(uow, m, o, now))  # type: ignore[misc]
            assert sold is not None
            store.run(
                lambda uow, m=market, s=sold: finish_operation(uow, m, s.id, 3, None, now, FinishPolicy())
            )  # type: ignore[misc]
    finally:
        store.close()
    rows = list(csv.DictReader(io.StringIO(run(tmp_path, "earnings", "--by", "marketplace", "--csv").stdout)))
    assert [(r["marketplace"], r["currency"], r["sold"], r["earnings"]) for r in rows] == [
        ("onlinesim", "RUB", "1", "12.50"),
        ("smshub", "USD", "1", "0.35"),
    ]
    table = run(tmp_path, "earnings", "--by", "marketplace", env={"COLUMNS": "120"}).stdout
    assert "12.50 RUB, 0.35 USD from 2 sale(s) in 7 day(s)" in table
