"""Booking clicks' work in progress and the card each must update (an outbox), so that work a
crash interrupted is finished after a restart by whichever process claims it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_job",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("verb", sa.String(64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("card", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("claimed_until", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_booking_job_key", "booking_job", ["key"], unique=True)
    op.create_index("ix_booking_job_claimed_until", "booking_job", ["claimed_until"])


def downgrade() -> None:
    op.drop_index("ix_booking_job_claimed_until", table_name="booking_job")
    op.drop_index("ix_booking_job_key", table_name="booking_job")
    op.drop_table("booking_job")
