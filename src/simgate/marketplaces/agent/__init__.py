"""The agent protocol (SMSHUB, Grizzly, HeroSMS: spec/smshub-agent.md), written once.

Each marketplace of the family is a small configuration of it: a name, a path, a default
push URL and name maps (marketplaces/smshub/).
"""
