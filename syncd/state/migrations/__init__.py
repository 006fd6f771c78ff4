"""Alembic revisions of the state schema, one path for SQLite and PostgreSQL (run by ``syncd.state.migrate``)."""
