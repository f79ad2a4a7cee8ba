"""Service requests, the approvers each waits for, and their audit trail.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_request",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("submission_id", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("requester_id", sa.String(128), nullable=False),
        sa.Column("requester_name", sa.String(256), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("policy_id", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.String(36), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("total", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_service_request_requester",
        "service_request",
        ["tenant_id", "requester_id", "status"],
    )

    op.create_table(
        "request_approver",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("stage_id", sa.String(64), primary_key=True),
        sa.Column("approver_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_request_approver_approver", "request_approver", ["approver_id"])

    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_name", sa.String(256), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("item_ids", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_event_request", "audit_event", ["request_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_request", table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_index("ix_request_approver_approver", table_name="request_approver")
    op.drop_table("request_approver")
    op.drop_index("ix_service_request_requester", table_name="service_request")
    op.drop_table("service_request")
