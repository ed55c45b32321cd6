"""request ledger, clip index, budget, fal uploads

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_days", sa.Column("day", sa.String(length=10), nullable=False), sa.PrimaryKeyConstraint("day")
    )
    op.create_table(
        "budget_entries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("clip_key", sa.String(length=128), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("budget_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_entries_day"), ["day"], unique=False)

    op.create_table(
        "clip_leases",
        sa.Column("clip_key", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.String(length=40), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("clip_key"),
    )
    op.create_table(
        "clips",
        sa.Column("clip_key", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("clip_key"),
    )
    op.create_table(
        "fal_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("clip_key", sa.String(length=128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("storyboard_id", sa.String(length=200), nullable=False),
        sa.Column("shot_id", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=True),
        sa.Column("estimated_cost_usd", sa.Float(), nullable=False),
        sa.Column("budget_reservation", sa.String(length=64), nullable=True),
        sa.Column("start_timeout_s", sa.Float(), nullable=True),
        sa.Column("origin", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.Column("sent_at", sa.String(length=40), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("status_url", sa.Text(), nullable=True),
        sa.Column("response_url", sa.Text(), nullable=True),
        sa.Column("cancel_url", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.String(length=40), nullable=True),
        sa.Column("cancel_requested_at", sa.String(length=40), nullable=True),
        sa.Column("finished_at", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("billed", sa.Boolean(), nullable=True),
        sa.Column("billable_units", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(length=100), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("decoded", sa.JSON(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=True),
        sa.Column("video_sha256", sa.String(length=64), nullable=True),
        sa.Column("video_size", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("clip_key", "attempt", name="uq_fal_requests_clip_attempt"),
    )
    with op.batch_alter_table("fal_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fal_requests_clip_key"), ["clip_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_fal_requests_request_id"), ["request_id"], unique=False)

    op.create_table(
        "fal_uploads",
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("access_url", sa.Text(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("uploaded_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("image_sha256"),
    )


def downgrade() -> None:
    op.drop_table("fal_uploads")
    with op.batch_alter_table("fal_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fal_requests_request_id"))
        batch_op.drop_index(batch_op.f("ix_fal_requests_clip_key"))

    op.drop_table("fal_requests")
    op.drop_table("clips")
    op.drop_table("clip_leases")
    with op.batch_alter_table("budget_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_entries_day"))

    op.drop_table("budget_entries")
    op.drop_table("budget_days")
