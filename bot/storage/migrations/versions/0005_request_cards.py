"""Where each request's cards were posted, and the fulfilment team's progress.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_request") as batch:
        batch.add_column(
            sa.Column("fulfilment", sa.String(16), nullable=False, server_default=sa.text("''"))
        )
    op.create_table(
        "request_card",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("conversation_id", sa.String(512), nullable=True),
        sa.Column("activity_id", sa.String(512), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_request_card_purpose", "request_card", ["request_id", "purpose"], unique=True
    )
    op.create_index("ix_request_card_conversation", "request_card", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_request_card_conversation", table_name="request_card")
    op.drop_index("ix_request_card_purpose", table_name="request_card")
    op.drop_table("request_card")
    with op.batch_alter_table("service_request") as batch:
        batch.drop_column("fulfilment")
