"""The marketplace registry: one line per plug-in (DESIGN.md, "Plug-ins").

Values are module paths, imported on first use: config and the CLI learn the names without
loading every protocol, and http/, bootstrap and config never import a marketplace module.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simgate.marketplaces.base import Plugin

MARKETPLACES: dict[str, str] = {
    "onlinesim": "simgate.marketplaces.onlinesim.plugin",
    "smshub": "simgate.marketplaces.smshub.plugin",
    "grizzly": "simgate.marketplaces.grizzly.plugin",
    "herosms": "simgate.marketplaces.herosms.plugin",
}


def names() -> tuple[str, ...]:
    return tuple(MARKETPLACES)


@cache
def plugin(name: str) -> Plugin:
    """The plug-in registered as `name`; KeyError for a name not in the registry."""
    loaded: Plugin = importlib.import_module(MARKETPLACES[name]).PLUGIN
    return loaded
