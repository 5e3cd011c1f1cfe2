"""connections and credentials keep a third of each page free (PostgreSQL fillfactor 70) for refresh updates

A refresh rewrites a connection row twice (the claim's lease, then its refresh facts) and its
credentials row once. With room left on the row's page, the lease and credentials updates, which
change no indexed column, can be heap-only (HOT): no new entry in any of the connections' nine
indexes. Measured on a refresh storm of 10,000 connections, runs paired with and without: HOT claims
2,806 -> 7,747 of 10,000, HOT credentials updates 1,928 -> 10,456 of 20,000; the storm 12-25 %
faster in each of three pairs (docs/performance.md). Applies to pages written from now on; ``VACUUM FULL connections,
credentials`` (or pg_repack) applies it to existing rows (docs/scaling.md). SQLite has no such
setting: nothing to do there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:05:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: The tables refreshes update in place.
TABLES = ("connections", "credentials")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
