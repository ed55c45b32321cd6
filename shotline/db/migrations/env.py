"""Alembic's environment: always run with a connection handed in by `shotline.db.engine`."""

from alembic import context

from shotline.db.tables import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
