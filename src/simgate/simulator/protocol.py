"""The two wire protocols the simulated marketplace speaks, and the names it uses.

Onlinesim (Reseller API v1) and the agent protocol (SMSHUB, Grizzly, HeroSMS) ask the same
three questions (GET_SERVICES, GET_NUMBER, FINISH_ACTIVATION) and receive the same push, but
differ in the details a partner gets wrong: where the key goes, one URL or one per call,
whether `any` is the total over operators or excludes them, money with or without a currency,
prefixes as numbers or strings, what a push looks like and what acknowledges it. The buyer
is written once; what differs is described here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ProtocolName = Literal["onlinesim", "agent"]
PROTOCOLS: dict[str, ProtocolName] = {
    "onlinesim": "onlinesim",
    "smshub": "agent",
    "grizzly": "agent",
    "herosms": "agent",
}
"""Marketplace -> the protocol it speaks (CONTRACT.md names)."""


@dataclass(frozen=True)
class Calls:
    """What the buyer calls each question, on each protocol (also the latency labels)."""

    services: str
    number: str
    finish: str
    services_rent: str | None = None
    number_rent: str | None = None
    finish_rent: str | None = None


ONLINESIM_CALLS = Calls(
    services="getServices",
    number="getNumber",
    finish="finishActivation",
    services_rent="getServicesRent",
    number_rent="getNumberRent",
    finish_rent="finishActivationRent",
)
AGENT_CALLS = Calls(services="GET_SERVICES", number="GET_NUMBER", finish="FINISH_ACTIVATION")
RUB = 643
"""ISO 4217 numeric codes the agent protocol sends with every `sum` (spec 5.2)."""
USD = 840


@dataclass(frozen=True)
class Names:
    """The marketplace's names where they differ from simgate's: marketplace -> simgate.

    The simulated SIM bank writes its SMS for simgate's service names, and checks across
    marketplaces add up counts per simgate name, so each marketplace translates here.
    """

    services: Mapping[str, str] = field(default_factory=dict)
    countries: Mapping[str, str] = field(default_factory=dict)
    operators: Mapping[str, str] = field(default_factory=dict)

    def service(self, name: str) -> str:
        return self.services.get(name, name)

    def country(self, name: str) -> str:
        return self.countries.get(name, name)

    def operator(self, name: str) -> str:
        return self.operators.get(name, name)

    def own_service(self, simgate_name: str) -> str:
        """The marketplace's name for one of simgate's services."""
        return _own(self.services, simgate_name)

    def own_country(self, simgate_name: str) -> str:
        return _own(self.countries, simgate_name)


def _own(names: Mapping[str, str], simgate_name: str) -> str:
    for own, canonical in names.items():
        if canonical == simgate_name:
            return own
    return simgate_name


AGENT_SERVICE_NAMES: dict[str, str] = {
    "vk": "vkcom", "wa": "whatsapp", "ok": "ok", "tg": "telegram", "go": "google",
    "fb": "facebook", "ig": "instagram", "dr": "openai", "lf": "tiktok", "av": "avito",
    "ub": "uber", "sg": "ozon", "ya": "yandex", "ma": "mailru", "wb": "wildberries",
    "ds": "discord", "tw": "twitter", "mm": "microsoft", "am": "amazon", "vi": "viber",
    "oi": "tinder",
}  # fmt: skip
"""The agent protocol's short service names. `vk`, `wa` and `ok` are SMSHUB's own examples
(spec smshub-agent 5.1); the rest follow the short codes this protocol family shares, which
the public copies of SMSHUB's list do not confirm (spec multi-marketplace 7)."""

AGENT_NAMES = Names(services=AGENT_SERVICE_NAMES)


SMS_ACTIVATE_COUNTRIES: dict[str, str] = {
    "0": "russia", "1": "ukraine", "2": "kazakhstan", "15": "poland", "43": "germany",
}  # fmt: skip
"""sms-activate's numeric country ids, which HeroSMS's buyer API uses (spec herosms 5.1)."""


@dataclass(frozen=True)
class AgentFlavour:
    """What one marketplace of the agent family does its own way, as far as its spec says.

    The spec marks most of these as guesses; the simulator plays the guess, and simgate's
    settings (name maps, push and ping URLs) are what lets an owner follow the real thing.
    """

    names: Names
    currency: int = RUB
    """ISO 4217 code sent with `sum`, and the currency of the prices."""
    price_factor: float = 1.0
    """Prices in that currency per rouble of the simulator's price list."""
    price_decimals: int = 2
    named_operators: bool = True
    """False: the owner has no operator names for it, so simgate advertises `any` only."""
    ping_path: str | None = None
    """A health-check URL the marketplace answers (GET, no key)."""


AGENT_FLAVOURS: dict[str, AgentFlavour] = {
    # SMSHUB: its own short names, RUB in the examples (spec smshub-agent 5).
    "smshub": AgentFlavour(names=AGENT_NAMES),
    # Grizzly copies SMSHUB's text and examples (spec grizzly 5.1); its `cur` has 2 decimals.
    "grizzly": AgentFlavour(names=AGENT_NAMES),
    # HeroSMS: sms-activate codes (services and numeric countries, the guess its spec
    # names), prices in USD (spec 5.2, 9), no operator names known, and a ping (spec 5.5).
    "herosms": AgentFlavour(
        names=Names(services=AGENT_SERVICE_NAMES, countries=SMS_ACTIVATE_COUNTRIES),
        currency=USD,
        price_factor=0.011,
        price_decimals=4,
        named_operators=False,
        ping_path="/agent/api/ping",
    ),
}
CURRENCY_LETTERS = {RUB: "RUB", USD: "USD"}
