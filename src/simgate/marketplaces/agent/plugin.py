"""Building an agent-protocol marketplace from its settings: one function for the family."""

from __future__ import annotations

from collections.abc import Callable

from simgate.domain.types import Timestamp
from simgate.marketplaces.agent.push import HORIZON, AgentPush
from simgate.marketplaces.agent.settings import AgentSettings
from simgate.marketplaces.base import Marketplace, Plugin
from simgate.storage.ports import Store


def agent_plugin(name: str, settings: type[AgentSettings]) -> Plugin:
    """The plug-in of one agent-protocol marketplace, served at POST /NAME."""

    def build(config: AgentSettings, store: Store, clock: Callable[[], Timestamp]) -> Marketplace:
        # Loaded when a marketplace is built, not when its settings are read: every `simgate`
        # command reads the settings, and the pinger's aiohttp alone costs it about 0.1 s of CPU.
        from simgate.marketplaces.agent.handlers import AgentProtocol
        from simgate.marketplaces.agent.names import NameMaps
        from simgate.marketplaces.agent.ping import Pinger, ping_url_for

        names = NameMaps(
            services=config.service_map,
            countries=config.country_map,
            operators=config.operator_map,
            modes=config.operator_mode,
        )
        protocol = AgentProtocol(
            name=name,
            store=store,
            key=config.key_value,
            names=names,
            offered=config.offered,
            clock=clock,
            always_200=config.error_status == "200",
        )
        push = None
        if config.push_url is not None:
            push = AgentPush(url=config.push_url, key=config.key_value, user_agent=config.user_agent)
        ping_url = config.ping_url or (config.push_url and ping_url_for(config.push_url))
        pinger = None
        if ping_url and config.ping_seconds > 0:
            pinger = Pinger(name, ping_url, config.ping_seconds, config.user_agent, clock)
        return Marketplace(
            name=name,
            handle=protocol.handle,
            envelope=protocol.envelope,
            paths=(f"/{name}",),
            push=push,
            horizon=HORIZON,
            secrets=tuple(config.secrets()),
            countries=frozenset(names.countries),
            background=() if pinger is None else (pinger.running,),
            health=None if pinger is None else pinger.health,
        )

    return Plugin(name=name, settings=settings, build=build)
