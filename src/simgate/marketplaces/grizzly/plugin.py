"""Grizzly as a configuration of the agent protocol: its push URL and name maps (the
User-Agent it requires is sent by every agent-protocol push, spec 2)."""

from __future__ import annotations

from typing import ClassVar

from simgate.marketplaces.agent.plugin import agent_plugin
from simgate.marketplaces.agent.settings import AgentSettings


class GrizzlySettings(AgentSettings):
    # Only the names Grizzly's visible text shows (spec 5.1); its Data Table was not
    # retrieved: add the rest under [marketplaces.grizzly.services] and the like.
    SHIPPED_SERVICES: ClassVar[dict[str, str]] = {"vkcom": "vk", "ok": "ok", "whatsapp": "wa"}
    SHIPPED_COUNTRIES: ClassVar[dict[str, str]] = {"russia": "russia", "ukraine": "ukraine"}
    SHIPPED_OPERATORS: ClassVar[dict[str, str]] = {name: name for name in ("beeline", "megafon", "life")}

    push_url: str | None = "https://api.grizzlysms.com/agent/api/sms"
    """A third-party client's default (spec 5.4, [guess]): support may hand out another host."""


PLUGIN = agent_plugin("grizzly", GrizzlySettings)
