"""Persistence: the unit of work, its repositories, SQL stores, the in-memory fake, migrations."""
