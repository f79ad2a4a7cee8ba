"""Graph directory: event id and room answer on bookings; per-user msal token caches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place, no table rebuild (which could drop checks).
    op.add_column("booking", sa.Column("event_id", sa.String(512), nullable=True))
    op.add_column("booking", sa.Column("room_response", sa.String(32), nullable=True))
    op.add_column(
        "booking",
        sa.Column("join_url_repaired", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "user_token_cache",
        sa.Column("user_key", sa.String(200), primary_key=True),
        sa.Column("cache", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_token_cache")
    op.drop_column("booking", "join_url_repaired")
    op.drop_column("booking", "room_response")
    op.drop_column("booking", "event_id")
