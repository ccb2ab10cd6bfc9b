"""The agent protocol's pieces without HTTP: settings, name maps and the `any` rule, pushes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simgate.config import SettingsError, load_settings
from simgate.domain.messages import PushReply, Verdict
from simgate.domain.model import CountryAvailability
from simgate.domain.types import CountryName, OperatorName, ServiceName
from simgate.marketplaces.agent.names import NameMaps
from simgate.marketplaces.agent.push import AgentPush
from simgate.marketplaces.smshub.plugin import SmshubSettings
from tests.unit.test_delivery_rules import make_due


def smshub(environ: dict[str, str], toml: str | None = None, tmp_path: Path | None = None) -> SmshubSettings:
    path = None
    if toml is not None:
        assert tmp_path is not None
        path = tmp_path / "simgate.toml"
        path.write_text(toml, encoding="utf-8")
    table = load_settings(environ, config_file=path).marketplaces["smshub"]
    assert isinstance(table, SmshubSettings)
    return table


# --- settings -------------------------------------------------------------------------


def test_smshub_is_off_until_its_key_is_set_and_ships_its_defaults() -> None:
    assert not smshub({}).enabled
    table = smshub({"SIMGATE_SMSHUB_KEY": "k"})
    assert table.enabled
    assert table.push_url == "https://agent.unerio.com/agent/api/sms"
    assert table.offered == ("ok", "vkcom", "whatsapp")
    assert table.service_map == {"vkcom": "vk", "ok": "ok", "whatsapp": "wa"}
    assert table.error_status == "4xx"


def test_environment_variables_set_the_contract_fields() -> None:
    table = smshub(
        {
            "SIMGATE_SMSHUB_KEY": "k",
            "SIMGATE_SMSHUB_PUSH_URL": "http://hub.test/agent/api/sms",
            "SIMGATE_SMSHUB_SERVICES": "WhatsApp, vkcom",
        }
    )
    assert table.push_url == "http://hub.test/agent/api/sms"
    assert table.offered == ("whatsapp", "vkcom")


def test_toml_tables_add_and_remove_names(tmp_path: Path) -> None:
    table = smshub(
        {},
        '[marketplaces.smshub]\nkey = "k"\noffer = ["telegram", "ok"]\n'
        '[marketplaces.smshub.services]\ntelegram = "tg"\nvkcom = ""\n'
        '[marketplaces.smshub.countries]\ngermany = "germany"\n'
        '[marketplaces.smshub.operators]\nvodafone = "vodafone"\n'
        '[marketplaces.smshub.operator_mode]\nrussia = "named"\n',
        tmp_path,
    )
    assert table.service_map == {"ok": "ok", "whatsapp": "wa", "telegram": "tg"}
    assert table.offered == ("telegram", "ok")
    assert table.country_map["germany"] == "germany"
    assert table.operator_map["vodafone"] == "vodafone"
    assert table.operator_mode == {"russia": "named"}


@pytest.mark.parametrize(
    ("environ", "toml", "message"),
    [
        (
            {"SIMGATE_SMSHUB_SERVICES": "myspace"},
            None,
            "SIMGATE_SMSHUB_SERVICES: not in the service catalogue",
        ),
        (
            {"SIMGATE_SMSHUB_SERVICES": "telegram"},
            None,
            "SIMGATE_SMSHUB_SERVICES: no name on this marketplace for telegram",
        ),
        ({"SIMGATE_SMSHUB_PUSH_URL": "agent.unerio.com"}, None, "SIMGATE_SMSHUB_PUSH_URL: must be an http"),
        ({"SIMGATE_SMSHUB_KEY": " "}, None, "SIMGATE_SMSHUB_KEY: must not be empty"),
        (
            {},
            '[marketplaces.smshub.services]\nwhatsapp = "vk"\n',
            "services: vkcom and whatsapp both map to 'vk'",
        ),
        (
            {},
            '[marketplaces.smshub.services]\nfriendster = "fr"\n',
            "not in the service catalogue: friendster",
        ),
        ({}, '[marketplaces.smshub.operator_mode]\nrussia = "both"\n', "marketplaces.smshub.operator_mode"),
        ({}, '[marketplaces.smshub]\nerror_status = "500"\n', "marketplaces.smshub.error_status"),
        ({}, '[marketplaces.grizly]\nkey = "k"\n', "unknown marketplace 'grizly' (known: onlinesim, smshub"),
    ],
)
def test_bad_settings_stop_start_up_naming_them(
    tmp_path: Path, environ: dict[str, str], toml: str | None, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        smshub(environ, toml, tmp_path)
    assert message in str(raised.value)


def test_onlinesim_variables_keep_working_beside_smshub() -> None:
    settings = load_settings({"SIMGATE_ONLINESIM_KEY": "a", "SIMGATE_SMSHUB_KEY": "b"})
    from simgate.bootstrap import enabled_marketplaces
    from simgate.logsecrets import secrets_of

    assert enabled_marketplaces(settings) == ["onlinesim", "smshub"]
    assert {"a", "b"} <= set(secrets_of(settings))
    assert enabled_marketplaces(load_settings({"SIMGATE_SMSHUB_KEY": "b"})) == ["smshub"]


# --- names and the any rule -------------------------------------------------------------

MAPS = NameMaps(
    services={"vkcom": "vk", "whatsapp": "wa"},
    countries={"russia": "russia"},
    operators={"beeline": "beeline", "mts": "mts"},
)
OFFERED = (ServiceName("vkcom"), ServiceName("whatsapp"), ServiceName("telegram"))


def country(**operators: dict[str, int]) -> CountryAvailability:
    return CountryAvailability(
        CountryName("russia"),
        {
            OperatorName(op): {ServiceName(s): n for s, n in counts.items()}
            for op, counts in operators.items()
        },
    )


def test_named_operators_when_every_operator_has_a_name() -> None:
    listed = MAPS.country_list(
        [country(any={"vkcom": 3, "whatsapp": 1}, beeline={"vkcom": 2, "whatsapp": 1}, mts={"vkcom": 1})],
        OFFERED,
    )
    assert listed == [
        {"country": "russia", "operatorMap": {"beeline": {"vk": 2, "wa": 1}, "mts": {"vk": 1, "wa": 0}}}
    ]


def test_any_alone_when_an_operator_is_unknown_or_unnamed() -> None:
    unknown = country(any={"vkcom": 3}, beeline={"vkcom": 2})  # one number with operator ''
    assert MAPS.country_list([unknown], OFFERED)[0]["operatorMap"] == {"any": {"vk": 3, "wa": 0}}
    unnamed = country(any={"vkcom": 2}, beeline={"vkcom": 1}, tele2={"vkcom": 1})
    assert MAPS.country_list([unnamed], OFFERED)[0]["operatorMap"] == {"any": {"vk": 2, "wa": 0}}


def test_a_pinned_mode_wins() -> None:
    named = NameMaps(MAPS.services, MAPS.countries, MAPS.operators, modes={"russia": "named"})
    unnamed = country(any={"vkcom": 2}, beeline={"vkcom": 1}, tele2={"vkcom": 1})
    assert named.country_list([unnamed], OFFERED)[0]["operatorMap"] == {"beeline": {"vk": 1, "wa": 0}}
    pinned_any = NameMaps(MAPS.services, MAPS.countries, MAPS.operators, modes={"russia": "any"})
    only_named = country(any={"vkcom": 1}, beeline={"vkcom": 1})
    assert pinned_any.country_list([only_named], OFFERED)[0]["operatorMap"] == {"any": {"vk": 1, "wa": 0}}


def test_names_come_back_to_simgate_names() -> None:
    assert MAPS.service("wa") == "whatsapp"
    assert MAPS.service("tg") is None
    assert MAPS.country("russia") == "russia"
    assert MAPS.operator("any") == "any"
    assert MAPS.operator("mts") == "mts"
    assert MAPS.operator("tele2") is None


# --- PUSH_SMS --------------------------------------------------------------------------

PUSH = AgentPush(url="https://hub.test/agent/api/sms", key="k", user_agent="simgate/test")


def test_a_push_carries_the_sms_id_and_numbers_as_json_numbers() -> None:
    request = PUSH.request(make_due(message_id=9001, operation_id=355))
    assert request.url == "https://hub.test/agent/api/sms"
    payload = json.loads(request.body)
    assert payload["smsId"] == 9001
    assert isinstance(payload["phone"], int)
    assert set(payload) == {"action", "key", "smsId", "phone", "phoneFrom", "text"}
    assert request.headers["User-Agent"] == "simgate/test"
    assert request.headers["Accept-Encoding"] == "gzip"


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (PushReply(200, b'{"status":"SUCCESS"}', 1.0), Verdict.DELIVERED),
        (PushReply(200, b'{"status":"ERROR","error":"x"}', 1.0), Verdict.RETRY),
        (PushReply(200, b"", 1.0), Verdict.RETRY),  # HTTP 200 alone is not SUCCESS
        (PushReply(200, b"SUCCESS", 1.0), Verdict.RETRY),
        (PushReply(500, b"oops", 1.0), Verdict.RETRY),
        (PushReply(None, b"", 1.0, "timeout"), Verdict.RETRY),
        (PushReply(200, b'{"status":"NO_OPERATION"}', 1.0), Verdict.RETRY),  # no final codes here
    ],
)
def test_only_a_body_success_delivers(reply: PushReply, verdict: Verdict) -> None:
    assert PUSH.verdict(reply) == (verdict, None)


def test_an_agent_push_outlives_onlinesims_twenty_minutes() -> None:
    from simgate.delivery.retry import RetryPolicy
    from simgate.marketplaces.agent.push import HORIZON

    policy = RetryPolicy(horizons={"smshub": HORIZON})
    late = 3600.0
    smshub_item = make_due(marketplace="smshub")
    assert policy.give_up_reason(smshub_item, smshub_item.created_at + late) is None
    assert policy.give_up_reason(make_due(), smshub_item.created_at + late) is not None
    assert policy.give_up_reason(smshub_item, smshub_item.created_at + 24 * 3600) is not None
