"""Message activities already handled, so that a redelivered one is answered once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_activity",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_seen_activity_seen_at", "seen_activity", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_activity_seen_at", table_name="seen_activity")
    op.drop_table("seen_activity")
