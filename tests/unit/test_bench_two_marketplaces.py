"""The two-marketplace bench scenario's pieces (bench/two_marketplaces.py), without a server."""

from __future__ import annotations

from pathlib import Path

from bench import farm
from bench.two_marketplaces import agent_script, build_farm, names_toml, verdicts

from simgate import catalogue
from simgate.config import load_settings
from simgate.storage.sqlite import SQLiteStore


def test_the_agent_script_speaks_to_post_smshub_and_releases_with_status_5(tmp_path: Path) -> None:
    script = agent_script(tmp_path, "k" * 32, [b'{"action":"GET_NUMBER"}']).read_text()
    assert '"POST", "/smshub"' in script
    assert "/onlinesim/" not in script
    assert '"status":5' in script
    assert '"status":4' not in script


def test_the_names_file_gives_smshub_a_name_for_every_service_and_country(tmp_path: Path) -> None:
    services = catalogue.services()[:5]
    settings = load_settings(
        {"SIMGATE_CONFIG": str(names_toml(tmp_path, services)), "SIMGATE_SMSHUB_KEY": "k"}
    )
    table = settings.marketplaces["smshub"]
    assert set(services) <= set(table.services)  # type: ignore[attr-defined]
    assert {country for country, *_ in farm.COUNTRIES} <= set(table.countries)  # type: ignore[attr-defined]


def test_the_bench_farm_is_shared_among_the_lanes_at_import(tmp_path: Path) -> None:
    path = tmp_path / "farm.db"
    build_farm(path, farm.FarmShape(numbers=200), catalogue.services()[:10], ("onlinesim", "smshub"))
    store = SQLiteStore(str(path))
    try:
        free = store.run_report(lambda r: r.free_by_lane())
    finally:
        store.close()
    assert set(free) == {"onlinesim", "smshub"}
    assert abs(free["onlinesim"] - free["smshub"]) <= len(farm.COUNTRIES) * 2


def test_the_verdict_is_the_issue_target() -> None:
    assert verdicts({"ratio_pairs": 0.91})["two marketplaces: pairs/s >= 0.9x one"]
    assert not verdicts({"ratio_pairs": 0.85})["two marketplaces: pairs/s >= 0.9x one"]
