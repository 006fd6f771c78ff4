"""Fencing: each named lease counts its changes of holder, so work begun under a lease that another instance has taken
since is refused when it writes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("leases") as table:
        table.add_column(sa.Column("generation", sa.Integer, nullable=False, server_default="1"))
