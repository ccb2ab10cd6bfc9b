"""The database URL (CONTRACT.md: sqlite:///PATH or postgresql://USER@HOST/DB), read in one place.

Settings check it, bootstrap picks the store by it, migrations hand it to SQLAlchemy and the
SQLite store opens its file: each asks this value instead of looking at the prefix itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SQLITE = "sqlite:///"
POSTGRESQL = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    url: str
    dialect: Literal["sqlite", "postgresql"]

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        if url.startswith(SQLITE) and len(url) > len(SQLITE):
            return cls(url, "sqlite")
        if url.startswith(POSTGRESQL):
            return cls(url, "postgresql")
        raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST/DB")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlalchemy(self) -> str:
        """Our URLs name the database; SQLAlchemy also wants the driver (psycopg 3, not psycopg2)."""
        if self.dialect == "postgresql":
            return "postgresql+psycopg://" + self.url.split("://", 1)[1]
        return self.url

    def sqlite_path(self) -> str:
        """`sqlite:///relative/or/./path.db` or `sqlite:////absolute/path.db`."""
        if self.dialect != "sqlite":
            raise ValueError("a SQLite URL looks like sqlite:///PATH")
        path = self.url.removeprefix(SQLITE)
        if path == ":memory:":
            raise ValueError("SQLite needs a file path: the writer and readers share it")
        return path
