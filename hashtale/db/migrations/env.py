from alembic import context

from hashtale.db.schema import Base
from hashtale.db.session import make_engine

config = context.config
target_metadata = Base.metadata
if not config.get_main_option("sqlalchemy.url"):  # the Alembic CLI (alembic.ini): the configured database
    from hashtale.settings import Settings

    config.set_main_option("sqlalchemy.url", Settings.from_env().database_url.replace("%", "%%"))


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # A batch migration rebuilds a table (create, copy, drop the old one): with foreign keys on, dropping
            # `posts` would cascade and delete every post's hashtags, story and reviews. This engine is disposed below.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # ends the statement's autobegun transaction: Alembic begins and commits its own
        # render_as_batch: SQLite needs table rebuilds for most ALTERs.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
