"""Stale marks: a stored personal conversation the Bot Connector refused (403 blocked or not in
the roster, 404 not found) and a posted card copy that can no longer be updated, each with when
and why, so neither is used again until Teams shows otherwise.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("conversation_ref", "request_card"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("stale_at", UTCDateTime(), nullable=True))
            batch.add_column(sa.Column("stale_reason", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in ("request_card", "conversation_ref"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("stale_reason")
            batch.drop_column("stale_at")
