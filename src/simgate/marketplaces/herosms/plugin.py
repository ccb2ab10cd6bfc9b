"""HeroSMS as a configuration of the agent protocol: push URL, names, and a periodic ping."""

from __future__ import annotations

from typing import ClassVar

from simgate.marketplaces.agent.plugin import agent_plugin
from simgate.marketplaces.agent.settings import AgentSettings
from simgate.marketplaces.base import ResaleWindowSettings


class HerosmsSettings(AgentSettings, ResaleWindowSettings):
    # Its anti-resale terms (spec 7.2) are one ledger entry: SIMGATE_HEROSMS_RESALE_DAYS and
    # SIMGATE_HEROSMS_RESALE_SCOPE (ResaleWindowSettings, domain/ledger.py).
    # Service codes are the sms-activate ones HeroSMS's terms and buyer API use (spec 5.1,
    # [guess]). Country names follow SMSHUB's ([R5-derived] guess): a farm told to use
    # sms-activate's numeric ids sets [marketplaces.herosms.countries] russia = "0".
    # No operator names are known, so every country is advertised under `any`.
    SHIPPED_SERVICES: ClassVar[dict[str, str]] = {"whatsapp": "wa", "telegram": "tg", "openai": "dr"}
    SHIPPED_COUNTRIES: ClassVar[dict[str, str]] = {"russia": "russia", "ukraine": "ukraine"}

    push_url: str | None = "https://api.partnersservices.net/agent/api/sms"
    ping_seconds: float = 60.0
    """The reference agent pings before pushing, not on a schedule (spec 5.5); once a minute
    tells the owner the path to HeroSMS works without loading it."""


PLUGIN = agent_plugin("herosms", HerosmsSettings)
