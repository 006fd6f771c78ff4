"""Alembic's entry point: syncd always hands it an open connection (``syncd.state.migrate``), never a URL."""

from __future__ import annotations

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    render_as_batch=True,  # SQLite alters a table by copying it; Alembic's batch mode does that for both back ends
)
with context.begin_transaction():
    context.run_migrations()
