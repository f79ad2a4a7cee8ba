"""Repeating bookings: a draft's repeat rule and count; the series a booking belongs to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "booking_draft",
        sa.Column("repeat", sa.String(16), nullable=False, server_default="none"),
    )
    op.add_column(
        "booking_draft",
        sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"),
    )
    op.add_column("booking", sa.Column("series_id", sa.String(36), nullable=True))
    op.create_index("ix_booking_series_id", "booking", ["series_id"])


def downgrade() -> None:
    op.drop_index("ix_booking_series_id", table_name="booking")
    op.drop_column("booking", "series_id")
    op.drop_column("booking_draft", "occurrences")
    op.drop_column("booking_draft", "repeat")
