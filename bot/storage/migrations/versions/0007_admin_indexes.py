"""Indexes for the `admin` command's counts: a tenant's bookings by start, its pending requests by
age, and its approved requests by fulfilment step and time of the last change.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_booking_tenant_start", "booking", ["tenant_id", "start_at", "status"])
    op.create_index(
        "ix_service_request_tenant_status",
        "service_request",
        ["tenant_id", "status", "created_at"],
    )
    op.create_index(
        "ix_service_request_tenant_fulfilment",
        "service_request",
        ["tenant_id", "fulfilment", "updated_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_service_request_tenant_fulfilment", table_name="service_request")
    op.drop_index("ix_service_request_tenant_status", table_name="service_request")
    op.drop_index("ix_booking_tenant_start", table_name="booking")
