"""Onlinesim Reseller API v1 (spec/onlinesim-reseller.md sections 5 and 6)."""

MARKETPLACE = "onlinesim"
