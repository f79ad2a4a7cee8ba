"""Bookings, drafts, conversation references and user profiles.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("attempt_id", sa.String(36), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("user_name", sa.String(256), nullable=False),
        sa.Column("room_id", sa.String(256), nullable=False),
        sa.Column("room_name", sa.String(256), nullable=False),
        sa.Column("building", sa.String(256), nullable=False),
        sa.Column("floor_label", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("attendees", sa.Integer(), nullable=False),
        sa.Column("online_meeting", sa.Boolean(), nullable=False),
        sa.Column("join_url", sa.Text(), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cancel_comment", sa.String(500), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("end_at > start_at", name="ck_booking_positive_length"),
    )
    op.create_index(
        "ix_booking_user_upcoming", "booking", ["tenant_id", "user_id", "status", "end_at"]
    )
    op.create_index("ix_booking_room_time", "booking", ["room_id", "start_at", "end_at"])
    if op.get_bind().dialect.name == "postgresql":
        # The database refuses two confirmed bookings of one room whose times overlap at all.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE booking ADD CONSTRAINT booking_room_no_overlap EXCLUDE USING gist "
            "(room_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&) "
            "WHERE (status = 'confirmed')"
        )

    op.create_table(
        "booking_draft",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("attendees", sa.Integer(), nullable=False),
        sa.Column("building", sa.String(256), nullable=True),
        sa.Column("floor", sa.Integer(), nullable=True),
        sa.Column("equipment", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("online_meeting", sa.Boolean(), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_booking_draft_created", "booking_draft", ["created_at"])

    op.create_table(
        "conversation_ref",
        sa.Column("conversation_id", sa.String(512), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("conversation_type", sa.String(32), nullable=False),
        sa.Column("service_url", sa.String(512), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("welcomed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_conversation_ref_user", "conversation_ref", ["tenant_id", "user_id"])

    op.create_table(
        "user_profile",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_profile")
    op.drop_index("ix_conversation_ref_user", table_name="conversation_ref")
    op.drop_table("conversation_ref")
    op.drop_index("ix_booking_draft_created", table_name="booking_draft")
    op.drop_table("booking_draft")
    op.drop_index("ix_booking_room_time", table_name="booking")
    op.drop_index("ix_booking_user_upcoming", table_name="booking")
    op.drop_table("booking")
