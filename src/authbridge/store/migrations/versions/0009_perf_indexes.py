"""indexes for 100k connections: the listing's keyset order per filter, the refresher's scan

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.create_index("ix_connections_created_at_id", "connections", ["created_at", "id"])
    op.create_index("ix_connections_integration_created", "connections", ["integration_id", "created_at", "id"])
    op.create_index("ix_connections_status_created", "connections", ["status", "created_at", "id"])
    op.create_index(
        "ix_connections_integration_status_created", "connections", ["integration_id", "status", "created_at", "id"]
    )
    op.create_index("ix_connections_end_user_created", "connections", ["end_user_id", "created_at", "id"])
    op.create_index(
        "ix_connections_active_expires", "connections", ["expires_at"], postgresql_where=_ACTIVE, sqlite_where=_ACTIVE
    )
    op.create_index(
        "ix_connections_active_refreshed",
        "connections",
        ["last_refreshed_at"],
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )


def downgrade() -> None:
    for name in (
        "ix_connections_active_refreshed",
        "ix_connections_active_expires",
        "ix_connections_end_user_created",
        "ix_connections_integration_status_created",
        "ix_connections_status_created",
        "ix_connections_integration_created",
        "ix_connections_created_at_id",
    ):
        op.drop_index(name, table_name="connections")
