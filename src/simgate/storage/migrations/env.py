"""Alembic environment: one migration history for SQLite and PostgreSQL.

simgate runs Alembic programmatically (storage/schema.py); the URL comes from the config's
main option, never from an alembic.ini, so operators only ever set SIMGATE_DATABASE_URL.
"""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "simgate sets sqlalchemy.url before running migrations"
    connect_args: dict[str, str] = {}
    if url.startswith("postgresql"):
        from simgate.storage.pg_hang import tcp_settings

        # Keepalives and tcp_user_timeout, unless the URL sets its own: a server that hangs
        # mid-migration fails it instead of holding `simgate migrate` for ever.
        connect_args = tcp_settings("postgresql://" + url.split("://", 1)[1])
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    with engine.connect() as connection:
        # render_as_batch lets SQLite alter tables by copy, which it needs for most ALTERs.
        context.configure(
            connection=connection,
            target_metadata=None,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several instances may start at once; one migrates, the others wait here
                # and then find nothing left to do.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7318092211)")
            context.run_migrations()
    engine.dispose()


run_migrations()
