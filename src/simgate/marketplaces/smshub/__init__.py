"""SMSHUB: the agent protocol with SMSHUB's push URL and names (spec/smshub-agent.md)."""
