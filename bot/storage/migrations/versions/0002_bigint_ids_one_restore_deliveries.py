"""VPS.org ids as BIGINT, at most one restore under way per server, Slack request identities

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDER_WAY = "action = 'restore' AND status IN ('approved', 'executing', 'running')"


def upgrade() -> None:
    # Ids of 2**31 and above (the parser accepts 10 digits) overflowed INTEGER on PostgreSQL.
    with op.batch_alter_table("requests", schema=None) as batch_op:
        for column in ("server_id", "target_id"):
            batch_op.alter_column(
                column, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True
            )

    # Before this revision two restores of one server could both be under way. Any such pair
    # left in a live database needs a person: all but the oldest are marked so, and the unique
    # index can then be built.
    op.execute(
        sa.text(
            "UPDATE requests SET status = 'needs_attention' "  # noqa: S608 (constants only)
            f"WHERE {UNDER_WAY} AND id NOT IN ("
            f"  SELECT MIN(id) FROM requests WHERE {UNDER_WAY} GROUP BY server_id)"
        )
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index(
            "uq_requests_one_restore_per_server",
            ["server_id"],
            unique=True,
            postgresql_where=sa.text(UNDER_WAY),
            sqlite_where=sa.text(UNDER_WAY),
        )

    op.create_table(
        "slack_deliveries",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_slack_deliveries")),
    )
    with op.batch_alter_table("slack_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slack_deliveries_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_deliveries_created_at"))
    op.drop_table("slack_deliveries")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("uq_requests_one_restore_per_server")
        for column in ("server_id", "target_id"):
            batch_op.alter_column(
                column, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True
            )
