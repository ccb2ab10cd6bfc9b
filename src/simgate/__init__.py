"""simgate: sell a SIM farm's numbers through SMS-activation marketplaces."""

__version__ = "0.1.0"
