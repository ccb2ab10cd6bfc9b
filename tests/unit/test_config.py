"""Settings (CONTRACT.md): environment over TOML, every bad value stops start-up by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simgate import catalogue
from simgate.config import Settings, SettingsError, load_settings
from simgate.marketplaces.onlinesim.settings import OnlinesimSettings


def onlinesim(settings: Settings) -> OnlinesimSettings:
    table = settings.marketplaces["onlinesim"]
    assert isinstance(table, OnlinesimSettings)
    return table


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "simgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_contract() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite:///./simgate.db"
    assert onlinesim(settings).key is None
    assert onlinesim(settings).push_url is None
    assert onlinesim(settings).push_path == "/v1/PUSH_SMS"
    assert onlinesim(settings).push_rent_path == "/v1/PUSH_SMS_RENT"
    assert settings.push_retry_seconds == 10
    assert settings.postgres_pool_size == 10
    assert settings.intake_token is None
    assert settings.admin_token is None
    assert onlinesim(settings).offered == catalogue.services()
    assert settings.is_sqlite


def test_every_contract_variable_is_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "SIMGATE_DATABASE_URL": "postgresql://simgate@db/simgate",
            "SIMGATE_ONLINESIM_KEY": "k-123",
            "SIMGATE_ONLINESIM_PUSH_URL": "https://push.example.org/",
            "SIMGATE_ONLINESIM_PUSH_PATH": "/v2/PUSH",
            "SIMGATE_ONLINESIM_PUSH_RENT_PATH": "/v2/PUSH_RENT",
            "SIMGATE_ONLINESIM_SERVICES": "Telegram, whatsapp",
            "SIMGATE_PUSH_RETRY_SECONDS": "2.5",
            "SIMGATE_INTAKE_TOKEN": "intake-0123456789",
            "SIMGATE_ADMIN_TOKEN": "admin-0123456789ab",
            "SIMGATE_POSTGRES_POOL_SIZE": "4",
        }
    )
    assert settings.database_url == "postgresql://simgate@db/simgate"
    assert settings.postgres_pool_size == 4
    assert not settings.is_sqlite
    assert onlinesim(settings).key is not None
    assert onlinesim(settings).key.get_secret_value() == "k-123"
    assert onlinesim(settings).push_url == "https://push.example.org"
    assert onlinesim(settings).push_path == "/v2/PUSH"
    assert onlinesim(settings).push_rent_path == "/v2/PUSH_RENT"
    assert onlinesim(settings).offered == ("telegram", "whatsapp")
    assert settings.push_retry_seconds == 2.5
    assert settings.intake_token is not None
    assert settings.intake_token.get_secret_value() == "intake-0123456789"
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "admin-0123456789ab"


def test_secrets_are_not_shown_in_the_settings_repr() -> None:
    settings = load_settings({"SIMGATE_ONLINESIM_KEY": "very-secret-key"})
    assert "very-secret-key" not in repr(settings)


def test_variables_without_the_prefix_or_unknown_are_ignored() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://x/y", "SIMGATE_SOMETHING_ELSE": "1"})
    assert settings.database_url == "sqlite:///./simgate.db"


def test_toml_file_sets_the_same_keys(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        'database_url = "sqlite:////var/lib/simgate/db.sqlite"\n'
        'onlinesim_key = "from-toml"\n'
        "push_retry_seconds = 30\n"
        'onlinesim_services = "vkcom"\n',
    )
    settings = load_settings({}, config_file=path)
    assert settings.database_url == "sqlite:////var/lib/simgate/db.sqlite"
    assert onlinesim(settings).key is not None
    assert onlinesim(settings).key.get_secret_value() == "from-toml"
    assert settings.push_retry_seconds == 30
    assert onlinesim(settings).offered == ("vkcom",)


def test_environment_wins_over_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'onlinesim_key = "from-toml"\npush_retry_seconds = 30\n')
    settings = load_settings({"SIMGATE_ONLINESIM_KEY": "from-env"}, config_file=path)
    assert onlinesim(settings).key is not None
    assert onlinesim(settings).key.get_secret_value() == "from-env"
    assert settings.push_retry_seconds == 30


def test_simgate_config_names_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "push_retry_seconds = 7\n")
    settings = load_settings({"SIMGATE_CONFIG": str(path)})
    assert settings.push_retry_seconds == 7


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SIMGATE_PUSH_RETRY_SECONDS", "soon"),
        ("SIMGATE_PUSH_RETRY_SECONDS", "0"),
        ("SIMGATE_PUSH_RETRY_SECONDS", "-1"),
        ("SIMGATE_DATABASE_URL", "mysql://root@localhost/simgate"),
        ("SIMGATE_DATABASE_URL", "sqlite:///"),
        ("SIMGATE_ONLINESIM_PUSH_URL", "ftp://push.example.org"),
        ("SIMGATE_ONLINESIM_PUSH_PATH", "v1/PUSH_SMS"),
        ("SIMGATE_ONLINESIM_PUSH_RENT_PATH", "PUSH_SMS_RENT"),
        ("SIMGATE_MAX_BODY_BYTES", "10"),
        ("SIMGATE_LOG_FORMAT", "xml"),
        ("SIMGATE_LANE_MIN_SHARE", "1.5"),
        ("SIMGATE_LANE_MIN_SHARE", "-0.1"),
        ("SIMGATE_POSTGRES_POOL_SIZE", "0"),
        ("SIMGATE_POSTGRES_POOL_SIZE", "many"),
    ],
)
def test_a_bad_value_names_its_setting(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: value})
    assert str(raised.value).startswith(f"{variable}:")


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"SIMGATE_PUSH_RETRY_SECONDS": "x", "SIMGATE_DATABASE_URL": "nope"})
    assert "SIMGATE_PUSH_RETRY_SECONDS" in str(raised.value)
    assert "SIMGATE_DATABASE_URL" in str(raised.value)


def test_a_bad_toml_value_is_named_as_the_file_writes_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'push_retry_seconds = "often"\n')
    with pytest.raises(SettingsError, match=f"^{re.escape(str(path))}: push_retry_seconds: ") as raised:
        load_settings({}, config_file=path)
    assert "SIMGATE_" not in str(raised.value)


def test_a_bad_variable_beside_a_file_is_named_as_a_variable(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "push_retry_seconds = 5\n")
    with pytest.raises(SettingsError, match=r"^SIMGATE_PUSH_RETRY_SECONDS: "):
        load_settings({"SIMGATE_PUSH_RETRY_SECONDS": "often"}, config_file=path)


def test_unknown_toml_key_is_rejected(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'databse_url = "sqlite:///x.db"\n')
    with pytest.raises(SettingsError, match=r": databse_url: unknown setting"):
        load_settings({}, config_file=path)


def test_a_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "this is = = not toml\n")
    with pytest.raises(SettingsError, match=f"^{re.escape(str(path))} is not valid TOML"):
        load_settings({}, config_file=path)


def test_a_missing_file_is_blamed_on_what_named_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^SIMGATE_CONFIG: cannot read"):
        load_settings({"SIMGATE_CONFIG": str(tmp_path / "absent.toml")})
    with pytest.raises(SettingsError, match=r"^--config: cannot read"):
        load_settings({}, config_file=tmp_path / "absent.toml")


def test_services_outside_the_catalogue_are_rejected() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"SIMGATE_ONLINESIM_SERVICES": "telegram,myspace,friendster"})
    message = str(raised.value)
    assert message.startswith("SIMGATE_ONLINESIM_SERVICES:")
    assert "friendster" in message
    assert "myspace" in message
    assert "telegram" not in message.split(":", 1)[1]


def test_an_empty_service_list_means_the_whole_catalogue() -> None:
    assert onlinesim(load_settings({"SIMGATE_ONLINESIM_SERVICES": " "})).offered == catalogue.services()


def test_the_catalogue_is_lower_case_unique_and_has_no_pseudo_services() -> None:
    names = catalogue.services()
    assert len(names) >= 30
    assert len(set(names)) == len(names)
    assert all(name == name.strip().lower() and name for name in names)
    assert {"facebook", "telegram", "google", "whatsapp", "vkcom"} <= set(names)
    assert "rent" not in names
    assert "any" not in names


def test_a_service_named_twice_is_offered_once() -> None:
    settings = load_settings({"SIMGATE_ONLINESIM_SERVICES": "telegram,Telegram,vkcom"})
    assert onlinesim(settings).offered == ("telegram", "vkcom")


def test_an_empty_partner_key_is_a_bad_value() -> None:
    with pytest.raises(SettingsError, match="SIMGATE_ONLINESIM_KEY"):
        load_settings({"SIMGATE_ONLINESIM_KEY": ""})


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    assert isinstance(settings, Settings)
    with pytest.raises(ValueError, match="frozen"):
        settings.database_url = "sqlite:///other.db"


# --- marketplaces: [marketplaces.NAME] tables, SIMGATE_NAME_* variables ---------------


def test_a_marketplace_table_sets_the_same_fields_as_the_flat_keys(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        '[marketplaces.onlinesim]\nkey = "from-table"\npush_url = "https://os.example"\nservices = "vkcom"\n',
    )
    table = onlinesim(load_settings({}, config_file=path))
    assert table.key is not None
    assert table.key.get_secret_value() == "from-table"
    assert table.push_url == "https://os.example"
    assert table.offered == ("vkcom",)
    assert table.enabled


def test_the_environment_wins_over_the_table(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[marketplaces.onlinesim]\nkey = "from-table"\n')
    table = onlinesim(load_settings({"SIMGATE_ONLINESIM_KEY": "from-env"}, config_file=path))
    assert table.key is not None
    assert table.key.get_secret_value() == "from-env"


def test_an_unknown_marketplace_table_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[marketplaces.smsbub]\nkey = "k"\n')
    with pytest.raises(SettingsError, match=r"unknown marketplace 'smsbub' \(known: onlinesim"):
        load_settings({}, config_file=path)


def test_a_bad_value_in_a_table_is_named_as_written(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[marketplaces.onlinesim]\npush_url = "ftp://x"\nfoo = 1\n')
    with pytest.raises(SettingsError) as raised:
        load_settings({}, config_file=path)
    assert f"{path}: marketplaces.onlinesim.push_url: must be an http" in str(raised.value)
    assert f"{path}: marketplaces.onlinesim.foo: unknown setting" in str(raised.value)
    with pytest.raises(SettingsError, match=r"^SIMGATE_ONLINESIM_PUSH_URL: must be an http"):
        load_settings({"SIMGATE_ONLINESIM_PUSH_URL": "ftp://y"}, config_file=path)


def test_serving_needs_one_enabled_marketplace_any_one() -> None:
    from simgate.bootstrap import enabled_marketplaces, require_serving

    with pytest.raises(SettingsError, match="no marketplace is enabled: set SIMGATE_ONLINESIM_KEY"):
        require_serving(load_settings({}))
    settings = load_settings({"SIMGATE_ONLINESIM_KEY": "k"})
    require_serving(settings)
    assert enabled_marketplaces(settings) == ["onlinesim"]
    assert enabled_marketplaces(load_settings({})) == []


@pytest.mark.parametrize("table", ["exclusion_groups", "hardware", "marketplaces"])
def test_a_variable_for_a_toml_table_says_where_it_is_set(table: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({f"SIMGATE_{table.upper()}": "whatsapp,astropay"})
    assert str(raised.value).startswith(f"SIMGATE_{table.upper()}: {table} is set in the TOML file (")


def test_lane_weights_refuse_a_marketplace_simgate_does_not_know() -> None:
    # "smshb=2" would weigh nothing at all and leave SMSHUB at 1, with no word to the owner.
    with pytest.raises(SettingsError) as raised:
        load_settings({"SIMGATE_LANE_WEIGHTS": "smshb=2,onlinesim=1"})
    assert str(raised.value) == (
        "SIMGATE_LANE_WEIGHTS: unknown marketplace 'smshb' (known: onlinesim, smshub, grizzly, herosms)"
    )
    assert load_settings({"SIMGATE_LANE_WEIGHTS": "SMSHUB=2, onlinesim=1"}).weights == {
        "smshub": 2.0,
        "onlinesim": 1.0,
    }


def test_a_misspelt_service_is_refused_with_the_closest_catalogue_name() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"SIMGATE_ONLINESIM_SERVICES": "telegramm,whatsapp,zzzqqq"})
    assert str(raised.value) == (
        "SIMGATE_ONLINESIM_SERVICES: not in the service catalogue: telegramm (did you mean telegram?), zzzqqq"
    )
