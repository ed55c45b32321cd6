"""The schema, as SQLAlchemy Core tables. Changed only together with a migration in `migrations/versions/`."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
# not Alembic's default `alembic_version`: the database may be Dagster's own, whose migrations use that name
VERSION_TABLE = "shotline_schema_version"

# One row per paid-request attempt; a clip key's rows, by `attempt`, are its whole history with fal.
fal_requests = Table(
    "fal_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("clip_key", String(128), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("state", String(24), nullable=False),
    Column("storyboard_id", String(200), nullable=False),
    Column("shot_id", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("parameters", JSON, nullable=False),
    # sha256 of the canonical JSON body POSTed to fal (what the platform listing is matched against)
    Column("input_sha256", String(64)),
    Column("image_sha256", String(64)),
    Column("estimated_cost_usd", Float, nullable=False),
    Column("budget_reservation", String(64)),
    Column("start_timeout_s", Float),
    Column("origin", String(24), nullable=False),  # submitted | adopted | duplicate | imported
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("sent_at", String(40)),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("request_id", String(100), index=True),
    Column("status_url", Text),
    Column("response_url", Text),
    Column("cancel_url", Text),
    Column("submitted_at", String(40)),
    Column("cancel_requested_at", String(40)),
    Column("finished_at", String(40)),
    Column("outcome", String(40)),
    Column("billed", Boolean),
    Column("billable_units", Float),
    Column("cost_usd", Float),
    Column("error", Text),
    Column("error_type", String(100)),
    Column("retryable", Boolean),
    Column("result", JSON),
    Column("decoded", JSON),
    Column("timings", JSON),
    Column("video_sha256", String(64)),
    Column("video_size", BigInteger),
    UniqueConstraint("clip_key", "attempt", name="uq_fal_requests_clip_attempt"),
)

# Who works on a clip key right now: a lease renewed by its holder, taken over once it expires.
clip_leases = Table(
    "clip_leases",
    metadata,
    Column("clip_key", String(128), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", String(40), nullable=False),
    Column("expires_at", Float, nullable=False),  # unix seconds
)

# The clip cache index: clip key -> the generated clip record (its video lives in the work store).
clips = Table(
    "clips",
    metadata,
    Column("clip_key", String(128), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("record", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
)

# The daily budget: one row per day (locked while reserving) and one per reservation.
budget_days = Table("budget_days", metadata, Column("day", String(10), primary_key=True))
budget_entries = Table(
    "budget_entries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("day", String(10), nullable=False, index=True),
    Column("clip_key", String(128), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("state", String(12), nullable=False),  # reserved | committed | released
    Column("at", String(40), nullable=False),
)

# Stills uploaded to fal storage, by content: uploaded once, reused while the URL serves.
fal_uploads = Table(
    "fal_uploads",
    metadata,
    Column("image_sha256", String(64), primary_key=True),
    Column("access_url", Text, nullable=False),
    Column("via", String(16), nullable=False),
    Column("uploaded_at", String(40), nullable=False),
)

# Every published deliverable of a shot, by take: what `shotline takes` lists and what review decisions bind to.
shot_takes = Table(
    "shot_takes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("storyboard_id", String(200), nullable=False),
    Column("shot_id", String(200), nullable=False),
    Column("take", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),  # of the deliverable
    Column("clip_key", String(128), nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("generator", String(24), nullable=False),
    Column("model", String(200)),
    Column("request_id", String(100)),
    Column("cost_usd", Float, nullable=False),  # what generating the take's clip cost when it was made
    Column("generated_at", String(40), nullable=False),
    Column("spec_sha256", String(64), nullable=False),
    Column("duration_s", Float),  # of the deliverable
    Column("video_uri", Text, nullable=False),
    Column("thumbnail_uri", Text),
    Column("thumbnail_sha256", String(64)),
    Column("manifest_uri", Text, nullable=False),
    Column("first_published_at", String(40), nullable=False),
    Column("published_at", String(40), nullable=False),  # the latest time it was published (latest.json)
    UniqueConstraint("storyboard_id", "shot_id", "sha256", name="uq_shot_takes_deliverable"),
    Index("ix_shot_takes_shot", "storyboard_id", "shot_id"),
)

# Review decisions, append-only: each is bound to the sha256 of the deliverable that was looked at.
review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("storyboard_id", String(200), nullable=False),
    Column("shot_id", String(200), nullable=False),
    Column("take", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("decision", String(12), nullable=False),  # approved | rejected
    Column("note", Text),
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", String(40), nullable=False),
    Column("via", String(24), nullable=False),  # cli | dagster
    Index("ix_review_decisions_shot", "storyboard_id", "shot_id"),
)
