"""The ledger's settings: HeroSMS's resale window and the exclusion groups, checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from simgate import catalogue
from simgate.config import SettingsError, load_settings
from simgate.domain.ledger import DAY, ResaleRule, ResaleScope


def test_herosms_terms_are_one_ledger_entry_by_default() -> None:
    assert load_settings({}).ledger.resale == (ResaleRule("herosms", 60 * DAY, ResaleScope.NUMBER),)


def test_the_window_and_its_scope_are_settings() -> None:
    ledger = load_settings(
        {"SIMGATE_HEROSMS_RESALE_DAYS": "30", "SIMGATE_HEROSMS_RESALE_SCOPE": "service"}
    ).ledger
    assert ledger.resale == (ResaleRule("herosms", 30 * DAY, ResaleScope.SERVICE),)
    assert load_settings({"SIMGATE_HEROSMS_RESALE_DAYS": "0"}).ledger.resale == ()


@pytest.mark.parametrize(("name", "value"), [("RESALE_SCOPE", "everything"), ("RESALE_DAYS", "-1")])
def test_a_bad_resale_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"SIMGATE_HEROSMS_{name}"):
        load_settings({f"SIMGATE_HEROSMS_{name}": value})


def test_the_shipped_groups_are_herosms_terms_in_catalogue_names() -> None:
    groups = {g.name: g for g in load_settings({}).ledger.groups}
    assert set(groups) == {
        "whatsapp+astropay",
        "uber+yandexgo",
        "novaposhta+viber",
        "whatsapp+whatsappbusiness",
    }
    assert groups["uber+yandexgo"].countries == {"kazakhstan"}
    for group in groups.values():
        assert group.services <= set(catalogue.services())


def test_groups_in_the_file_replace_the_shipped_ones(tmp_path: Path) -> None:
    config = tmp_path / "simgate.toml"
    config.write_text('[[exclusion_groups]]\nservices = ["Telegram", "signal"]\n')
    (group,) = load_settings({}, config).ledger.groups
    assert (group.name, group.services, group.countries) == ("signal+telegram", {"telegram", "signal"}, set())


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('services = ["whatsapp", "whatsap"]', "not in the service catalogue: whatsap"),
        ('services = ["whatsapp"]', "at least two different services"),
        (
            'services = ["uber", "yandexgo"]\ncountries = ["kazakstan"]',
            "not in the country catalogue: kazakstan",
        ),
        ('services = ["uber", "yandexgo"]\nservice = "x"', "unknown setting"),
    ],
)
def test_a_bad_group_is_refused_at_start_naming_it(tmp_path: Path, table: str, problem: str) -> None:
    config = tmp_path / "simgate.toml"
    config.write_text(f"[[exclusion_groups]]\n{table}\n")
    with pytest.raises(SettingsError, match="exclusion_groups") as error:
        load_settings({}, config)
    assert problem in str(error.value)
