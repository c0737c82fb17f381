"""Schedules with retention, server health for alerts, periodic jobs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AWARE = sa.DateTime(timezone=True)
KEPT = "schedule_id IS NOT NULL AND status = 'succeeded' AND pruned_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("spec", sa.String(length=255), nullable=False),
        sa.Column("keep", sa.Integer(), nullable=False),
        sa.Column("created_at", AWARE, nullable=False),
        sa.Column("next_run_at", AWARE, nullable=False),
        sa.Column("prune_after", AWARE, nullable=True),
        sa.Column("removed_at", AWARE, nullable=True),
        sa.Column("removed_by", sa.String(length=32), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", AWARE, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index(op.f("ix_schedules_server_id"), "schedules", ["server_id"], unique=False)
    op.create_index(
        "ix_schedules_removed_next_run", "schedules", ["removed_at", "next_run_at"], unique=False
    )
    op.create_table(
        "server_health",
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", AWARE, nullable=False),
        sa.Column("checked_at", AWARE, nullable=False),
        sa.PrimaryKeyConstraint("server_id", name=op.f("pk_server_health")),
    )
    op.create_table(
        "jobs",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("next_run_at", AWARE, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_jobs")),
    )
    # Nullable, no default: every request so far was a person's, and none was pruned.
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schedule_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pruned_at", AWARE, nullable=True))
        batch_op.create_index("ix_requests_schedule_runs", ["schedule_id", "id"], unique=False)
        batch_op.create_index(
            "ix_requests_schedule_kept",
            ["schedule_id"],
            unique=False,
            postgresql_where=sa.text(KEPT),
            sqlite_where=sa.text(KEPT),
        )


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_schedule_kept")
        batch_op.drop_index("ix_requests_schedule_runs")
        batch_op.drop_column("pruned_at")
        batch_op.drop_column("schedule_id")
    op.drop_table("jobs")
    op.drop_table("server_health")
    op.drop_index("ix_schedules_removed_next_run", table_name="schedules")
    op.drop_index(op.f("ix_schedules_server_id"), table_name="schedules")
    op.drop_table("schedules")
