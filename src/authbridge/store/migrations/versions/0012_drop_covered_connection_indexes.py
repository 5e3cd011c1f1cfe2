"""Drop three connections indexes that others cover: each refresh wrote an entry in all of them

A refresh changes the row's ``expires_at`` and ``last_refreshed_at``, both indexed (the refresher's
scan), so its update cannot be heap-only: every index of ``connections`` gets a new entry for the new
row version. Three of those indexes only repeat what another one serves:

- ``ix_connections_integration_id`` (the foreign key's): ``ix_connections_integration_created``
  (``integration_id, created_at, id``) starts with the same column, so the listing's filter and the
  ``ON DELETE RESTRICT`` check of an integration use that one;
- ``ix_connections_end_user_id``: likewise ``ix_connections_end_user_created`` (migration 0009);
- ``ix_connections_expires_at``: every query on ``expires_at`` is the refresher's, which asks for
  ``status = 'active'`` and is served by the partial ``ix_connections_active_expires``.

Measured on a refresh storm of 10,000 connections (PostgreSQL's own CPU, paired runs): 0.155 -> 0.134
and 0.139 -> 0.109 ms per refresh (docs/performance.md). The downgrade puts them back.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 22:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: (index, column) of connections' indexes that another index covers.
COVERED = (
    ("ix_connections_integration_id", "integration_id"),
    ("ix_connections_end_user_id", "end_user_id"),
    ("ix_connections_expires_at", "expires_at"),
)


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        for name, _ in COVERED:
            batch.drop_index(name)


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        for name, column in COVERED:
            batch.create_index(name, [column], unique=False)
