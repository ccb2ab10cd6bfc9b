"""How a simulated marketplace behaves: its settings, and what its clients buy.

Rates and probabilities are the marketplace's habits (how often it polls, how many orders,
how often a FINISH is lost or repeated); the service mix and prices are its clients' demand.
Delays are in simulated seconds (divided by `speed`), deadlines in real seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from simgate.simulator.protocol import (
    AGENT_CALLS,
    AGENT_FLAVOURS,
    AGENT_NAMES,
    CURRENCY_LETTERS,
    ONLINESIM_CALLS,
    PROTOCOLS,
    RUB,
    Calls,
    Names,
    ProtocolName,
)

DEFAULT_SERVICE_MIX: tuple[tuple[str, float], ...] = (
    ("telegram", 10.0),
    ("whatsapp", 8.0),
    ("vkcom", 5.0),
    ("google", 4.0),
    ("openai", 3.0),
    ("instagram", 3.0),
    ("facebook", 2.0),
    ("tiktok", 2.0),
    ("avito", 2.0),
    ("ok", 1.5),
    ("uber", 1.0),
    ("ozon", 1.0),
)
PRICES_RUB: dict[str, float] = {
    "telegram": 28, "whatsapp": 32, "vkcom": 14, "google": 16, "openai": 38, "instagram": 9,
    "facebook": 10, "tiktok": 7, "avito": 18, "ok": 6, "uber": 12, "ozon": 11,
}  # fmt: skip
COUNTRY_FACTOR: dict[str, float] = {"russia": 1.0, "kazakhstan": 0.6, "germany": 1.7, "poland": 1.3}
AGENT_SERVICE_MIX = tuple((AGENT_NAMES.own_service(name), weight) for name, weight in DEFAULT_SERVICE_MIX)


@dataclass(frozen=True)
class MarketplaceConfig:
    server_url: str
    """simgate's base URL, e.g. http://127.0.0.1:8080 (the marketplace's paths are added)."""
    key: str
    marketplace: str = "onlinesim"
    """Whose buyer this is (CONTRACT.md's names): decides the protocol and simgate's path."""
    names: Names = field(default_factory=Names)
    """The marketplace's names that differ from simgate's (see `for_marketplace`)."""
    push_path: str = "/agent/api/sms"
    """Agent protocol: where PUSH_SMS arrives (the path of every published agent push URL)."""
    ping_path: str | None = None
    """Agent protocol: a GET health check the marketplace answers (HeroSMS)."""
    currency: int = RUB
    """ISO 4217 code of the prices; the agent protocol sends it with `sum`."""
    price_factor: float = 1.0
    """Prices in `currency` per rouble of PRICES_RUB."""
    price_decimals: int = 2
    named_operators: bool = True
    """Whether the owner names this marketplace's operators (the demo's config file does)."""
    push_host: str = "127.0.0.1"
    push_port: int = 0
    """0: any free port (see MarketplaceSimulator.push_url once started)."""
    speed: float = 1.0
    # Simulated seconds (divided by speed).
    poll_interval: float = 20.0
    """GET_SERVICES cadence: Onlinesim documents 2 minutes, SMSHUB 10-20 s."""
    rent_poll_interval: float = 30.0
    activation_rate: float = 0.5
    """Activations ordered per simulated second (a Poisson process)."""
    rent_rate: float = 0.02
    patience: tuple[float, float] = (120.0, 600.0)
    """How long a client waits for the code before cancelling (status 4); at most 15 min."""
    read_delay: tuple[float, float] = (2.0, 20.0)
    """From the code's arrival to the client closing the operation as sold."""
    rent_guard: float = 20 * 60.0
    """No SMS within 20 minutes of a rent's start: Onlinesim cancels it (spec 6.2)."""
    rent_duration: tuple[float, float] = (1800.0, 7200.0)
    """Compressed: real rents last days; here 30-120 simulated minutes, ended early at drain."""
    finish_retry: float = 5.0
    services: tuple[tuple[str, float], ...] = DEFAULT_SERVICE_MIX
    tail_weight: float = 0.2
    """Weight of each advertised service outside `services`: the long tail of buyers."""
    countries: tuple[str, ...] = ()
    """Only these countries (empty: every advertised one)."""
    p_any_operator: float = 0.6
    p_exception: float = 0.1
    p_exception_ints: float = 0.6
    """exceptionPhoneSet as JSON integers (Onlinesim's example) rather than strings (SMSHUB's)."""
    p_refund: float = 0.05
    p_not_taken: float = 0.01
    p_omit_finish_sum: float = 0.3
    p_finish_lost: float = 0.03
    """The first FINISH is cut off before its answer is read, and then resent."""
    p_finish_repeat: float = 0.05
    """A confirmed FINISH sent again on purpose: it must be answered SUCCESS again."""
    p_push_failure: float = 0.02
    """A first push refused (500, or an agent-protocol ERROR), so the partner must retry it."""
    p_gzip: float = 0.1
    p_single_url: float = 0.1
    p_key_placement: tuple[float, float] = (0.1, 0.1)
    """Probability of the key only in the body, and only in the Bearer header (else both)."""
    # Real seconds.
    deadline: float = 10.0
    """Onlinesim's hard limit; SMSHUB's acceptance test fails an answer after 3 s."""
    slow: float = 1.0
    crossed_grace: float = 2.0
    """A push this soon after our FINISH crossed it on the wire: not the partner's fault."""
    max_open: int = 5000
    max_operations: int = 1_000_000
    max_finish_attempts: int = 6
    max_pushes_kept: int = 200_000
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.marketplace not in PROTOCOLS:
            raise ValueError(f"unknown marketplace {self.marketplace!r}; known: {', '.join(PROTOCOLS)}")

    @property
    def protocol(self) -> ProtocolName:
        return PROTOCOLS[self.marketplace]

    @property
    def calls(self) -> Calls:
        return ONLINESIM_CALLS if self.protocol == "onlinesim" else AGENT_CALLS

    @property
    def currency_letters(self) -> str:
        return CURRENCY_LETTERS.get(self.currency, str(self.currency))

    @property
    def rents(self) -> bool:
        """Whether the protocol knows rents (the agent protocol does not)."""
        return self.calls.services_rent is not None


def for_marketplace(marketplace: str, server_url: str, key: str, **settings: Any) -> MarketplaceConfig:
    """A buyer with `marketplace`'s habits; `settings` override any of them.

    The agent protocol has no rent; SMSHUB polls every 10-20 s, gzips its requests, sends
    prefixes as strings, uses its own short service names and fails an issue slower than
    3 s (spec smshub-agent 5-8). Grizzly and HeroSMS do the same, each with its own names,
    currency and extras (protocol.AGENT_FLAVOURS).
    """
    config = MarketplaceConfig(server_url=server_url, key=key, marketplace=marketplace)
    if config.protocol == "agent":
        flavour = AGENT_FLAVOURS[marketplace]
        mix = tuple((flavour.names.own_service(name), weight) for name, weight in DEFAULT_SERVICE_MIX)
        config = dataclasses.replace(
            config, poll_interval=15.0, rent_rate=0.0, services=mix, names=flavour.names,
            p_exception_ints=0.0, p_gzip=0.5, deadline=3.0, ping_path=flavour.ping_path,
            currency=flavour.currency, price_factor=flavour.price_factor,
            price_decimals=flavour.price_decimals, named_operators=flavour.named_operators,
        )  # fmt: skip
    return dataclasses.replace(config, **settings)
