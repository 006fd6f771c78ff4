"""The state records which syncd release last brought it up to date (``app_version``), so ``syncd status`` can show it
beside the running one and an older release refused by a newer schema can say which release wrote it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
