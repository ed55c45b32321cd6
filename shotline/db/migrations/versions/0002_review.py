"""takes and review: every published deliverable of a shot by take, and the review decisions bound to them

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shot_takes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("storyboard_id", sa.String(length=200), nullable=False),
        sa.Column("shot_id", sa.String(length=200), nullable=False),
        sa.Column("take", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("clip_key", sa.String(length=128), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("generator", sa.String(length=24), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("generated_at", sa.String(length=40), nullable=False),
        sa.Column("spec_sha256", sa.String(length=64), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("video_uri", sa.Text(), nullable=False),
        sa.Column("thumbnail_uri", sa.Text(), nullable=True),
        sa.Column("thumbnail_sha256", sa.String(length=64), nullable=True),
        sa.Column("manifest_uri", sa.Text(), nullable=False),
        sa.Column("first_published_at", sa.String(length=40), nullable=False),
        sa.Column("published_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("storyboard_id", "shot_id", "sha256", name="uq_shot_takes_deliverable"),
    )
    with op.batch_alter_table("shot_takes", schema=None) as batch_op:
        batch_op.create_index("ix_shot_takes_shot", ["storyboard_id", "shot_id"], unique=False)

    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("storyboard_id", sa.String(length=200), nullable=False),
        sa.Column("shot_id", sa.String(length=200), nullable=False),
        sa.Column("take", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", sa.String(length=40), nullable=False),
        sa.Column("via", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_review_decisions_shot", ["storyboard_id", "shot_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_review_decisions_shot")
    op.drop_table("review_decisions")
    with op.batch_alter_table("shot_takes", schema=None) as batch_op:
        batch_op.drop_index("ix_shot_takes_shot")
    op.drop_table("shot_takes")
