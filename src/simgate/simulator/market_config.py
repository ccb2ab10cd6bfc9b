"""How a simulated marketplace behaves: its settings, and what its clients buy.

Rates and probabilities are the marketplace's habits (how often it polls, how many orders,
how often a FINISH is lost or repeated); the service mix and prices are its clients' demand.
Delays are in simulated seconds (divided by `speed`), deadlines in real seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class MarketplaceConfig:
    server_url: str
    """simgate's base URL, e.g. http://127.0.0.1:8080 (the /onlinesim paths are added)."""
    key: str
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
    p_refund: float = 0.05
    p_not_taken: float = 0.01
    p_omit_finish_sum: float = 0.3
    p_finish_lost: float = 0.03
    """The first FINISH is cut off before its answer is read, and then resent."""
    p_finish_repeat: float = 0.05
    """A confirmed FINISH sent again on purpose: it must be answered SUCCESS again."""
    p_push_failure: float = 0.02
    """A first push answered 500, so the partner must retry it (and only it)."""
    p_gzip: float = 0.1
    p_single_url: float = 0.1
    p_key_placement: tuple[float, float] = (0.1, 0.1)
    """Probability of the key only in the body, and only in the Bearer header (else both)."""
    # Real seconds.
    deadline: float = 10.0
    slow: float = 1.0
    crossed_grace: float = 2.0
    """A push this soon after our FINISH crossed it on the wire: not the partner's fault."""
    max_open: int = 5000
    max_operations: int = 1_000_000
    max_finish_attempts: int = 6
    max_pushes_kept: int = 200_000
    seed: int | None = None
