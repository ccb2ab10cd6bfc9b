"""Use cases: short synchronous functions over a unit of work, run whole in one transaction."""
