"""Grizzly SMS: the agent protocol with Grizzly's push URL and names (spec/grizzly.md)."""
