"""The JSON documents published beside every clip and reel, as versioned pydantic models.

- `ClipManifest`: one clip's lineage, from its storyboard, image, prompt and generation request through every
  edit to the published objects and the Dagster run that made them.
- `ReelManifest`: a storyboard's reel, listing each clip's manifest and sha256.
- `LatestPointer`: `latest.json`, the one pointer per shot (or reel) to its newest published version.

Their JSON Schemas are committed under `schemas/` (see shotline.schemas). Bump SCHEMA_VERSION when a field is
removed, renamed or changes meaning; readers should refuse a version they do not know.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 2
LATEST_SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoryboardRef(_Model):
    id: str
    title: str
    file: str = Field(description="storyboard.yaml, relative to the storyboards location (SHOTLINE_STORYBOARDS)")
    file_sha256: str


class ShotRef(_Model):
    id: str
    index: int = Field(description="position in the storyboard, from 0")
    spec: dict[str, Any] = Field(description="the shot with every default resolved")
    spec_sha256: str = Field(description="hash of the spec, the storyboard vars and the image and template bytes")


class ImageLineage(_Model):
    origin: str = Field(description="as written in the storyboard: a relative path, https:// URL or s3:// URI")
    origin_kind: str
    source_sha256: str = Field(description="of the bytes fetched from the origin")
    sha256: str = Field(description="of the normalised image sent to the generator")
    width: int
    height: int


class PromptLineage(_Model):
    template: str | None = Field(description="template name, or null for an inline prompt")
    template_sha256: str
    variables: dict[str, Any]
    text: str = Field(description="the rendered prompt, exactly as sent")


class GenerationTimings(BaseModel):
    """What the generator measured. fal reports queue and inference; the offline preview only a total."""

    model_config = ConfigDict(extra="allow")

    submitted_at: str | None = Field(None, description="ISO time of the paid submit")
    queue_s: float | None = Field(None, description="seconds in fal's queue before the request started")
    inference_s: float | None = Field(None, description="seconds of inference, as fal reports them")
    download_s: float | None = Field(None, description="seconds to download the result")
    total_s: float | None = Field(None, description="seconds from submit (or start) to the clip on disk")
    resumed_at: str | None = Field(None, description="set when a later run resumed the same paid request")


class GenerationLineage(_Model):
    generator: str = Field(description="fal or preview")
    preview: bool = Field(description="true for the offline preview generator: not a real generation")
    model: str | None
    request_id: str | None = Field(description="fal request id (null for preview)")
    clip_key: str = Field(
        description="cache key: generator, model, image, prompt, duration, resolution, and the take from take 2 on"
    )
    cache_hit: bool = Field(description="this materialization reused an earlier generation")
    parameters: dict[str, Any] = Field(description="the request's parameters, the image by sha256")
    timings: GenerationTimings
    cost_usd: float = Field(description="what the generation cost when it was made")
    sha256: str
    width: int
    height: int
    fps: float
    duration_s: float


class PostProcessingLineage(_Model):
    steps: list[dict[str, Any]] = Field(description="every step in order, with its parameters")
    encoder: dict[str, Any] = Field(description="encoder settings of the deliverable")
    sha256: str
    width: int
    height: int
    duration_s: float


class PublishedRef(_Model):
    """A published object as lineage records it: where, and its bytes' checksum and size (no expiring link)."""

    uri: str
    sha256: str
    size: int


class PublishedLineage(_Model):
    video: PublishedRef
    thumbnail: PublishedRef | None = None
    manifest_uri: str


class DagsterLineage(_Model):
    run_id: str | None
    partition_key: str | None
    code_versions: dict[str, str] = Field(description="code_version of each asset of the chain, and the package's")
    upstream_data_versions: dict[str, str] = Field(
        default_factory=dict, description="data version of each upstream materialization used"
    )


class ClipManifest(_Model):
    schema_version: int = SCHEMA_VERSION
    kind: str = "clip"
    created_at: str = Field(default_factory=_now)
    storyboard: StoryboardRef
    shot: ShotRef
    take: int = Field(1, description="which take of the shot this clip is: 1 for its first generation")
    image: ImageLineage
    prompt: PromptLineage
    generation: GenerationLineage
    post_processing: PostProcessingLineage
    published: PublishedLineage
    dagster: DagsterLineage


class ClipApproval(_Model):
    """Where a deliverable stood in review when the reel was cut."""

    state: str = Field(description="approved, rejected or awaiting review")
    decided_by: str | None = None
    decided_at: str | None = Field(None, description="ISO time of the decision")
    note: str | None = None


class ReelClip(_Model):
    shot_id: str
    take: int = Field(1, description="which take of the shot is in the reel")
    approval: ClipApproval | None = Field(None, description="the clip's review when the reel was cut")
    sha256: str = Field(description="of the clip's deliverable")
    manifest_uri: str | None
    manifest_sha256: str | None = None
    duration_s: float
    generator: str
    cost_usd: float


class ReelManifest(_Model):
    schema_version: int = SCHEMA_VERSION
    kind: str = "reel"
    created_at: str = Field(default_factory=_now)
    storyboard: StoryboardRef
    transition: str
    transition_seconds: float
    clips: list[ReelClip]
    total_cost_usd: float
    post_processing: PostProcessingLineage
    published: PublishedLineage
    dagster: DagsterLineage


class LatestFiles(_Model):
    """The names beside latest.json, for readers of a copied or mirrored tree."""

    video: str
    thumbnail: str | None
    manifest: str


class LatestPointer(_Model):
    """`<storyboard_id>/<shot_id>/latest.json`: the newest published version; written after everything else."""

    schema_version: int = LATEST_SCHEMA_VERSION
    storyboard_id: str
    shot_id: str = Field(description="'reel' for the storyboard's reel")
    take: int | None = Field(None, description="the shot's current take, the one pointed at (null for a reel)")
    sha256: str = Field(description="of the video")
    size: int
    video: str
    thumbnail: str | None
    manifest: str
    thumbnail_sha256: str | None
    manifest_sha256: str
    files: LatestFiles
    published_at: str
    generator: str | None


def to_json(manifest: BaseModel) -> str:
    return json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
