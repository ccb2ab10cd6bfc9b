"""SMSHUB as a configuration of the agent protocol: its push URL and shipped name maps."""

from __future__ import annotations

from typing import ClassVar

from simgate.marketplaces.agent.plugin import agent_plugin
from simgate.marketplaces.agent.settings import AgentSettings


class SmshubSettings(AgentSettings):
    # Only the names SMSHUB's protocol document confirms (spec 5.1); its full lists live
    # at smshub.org/countries: add more under [marketplaces.smshub.services] and the like.
    SHIPPED_SERVICES: ClassVar[dict[str, str]] = {"vkcom": "vk", "ok": "ok", "whatsapp": "wa"}
    SHIPPED_COUNTRIES: ClassVar[dict[str, str]] = {"russia": "russia", "ukraine": "ukraine"}
    SHIPPED_OPERATORS: ClassVar[dict[str, str]] = {
        name: name for name in ("beeline", "megafon", "mts", "life")
    }

    push_url: str | None = "https://agent.unerio.com/agent/api/sms"


PLUGIN = agent_plugin("smshub", SmshubSettings)
