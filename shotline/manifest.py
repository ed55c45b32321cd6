"""The lineage manifest published beside every clip and reel: one JSON document that leads from a published
object back to its storyboard, image, prompt, generation request and every edit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoryboardRef(_Model):
    id: str
    title: str
    file: str  # path relative to the storyboards location
    file_sha256: str


class ShotRef(_Model):
    id: str
    index: int
    spec: dict[str, Any]
    spec_sha256: str


class ImageLineage(_Model):
    origin: str
    origin_kind: str
    source_sha256: str
    sha256: str
    width: int
    height: int


class PromptLineage(_Model):
    template: str | None
    template_sha256: str
    variables: dict[str, Any]
    text: str


class GenerationLineage(_Model):
    generator: str
    preview: bool
    model: str | None
    request_id: str | None
    clip_key: str
    cache_hit: bool
    parameters: dict[str, Any]
    timings: dict[str, Any]
    cost_usd: float
    sha256: str
    width: int
    height: int
    fps: float
    duration_s: float


class PostProcessingLineage(_Model):
    steps: list[dict[str, Any]]
    encoder: dict[str, Any]
    sha256: str
    width: int
    height: int
    duration_s: float


class PublishedObject(_Model):
    uri: str
    sha256: str
    size: int


class PublishedLineage(_Model):
    video: PublishedObject
    thumbnail: PublishedObject | None = None
    manifest_uri: str


class DagsterLineage(_Model):
    run_id: str | None
    partition_key: str | None
    code_versions: dict[str, str]
    upstream_data_versions: dict[str, str] = Field(default_factory=dict)


class ClipManifest(_Model):
    schema_version: int = SCHEMA_VERSION
    kind: str = "clip"
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    storyboard: StoryboardRef
    shot: ShotRef
    image: ImageLineage
    prompt: PromptLineage
    generation: GenerationLineage
    post_processing: PostProcessingLineage
    published: PublishedLineage
    dagster: DagsterLineage


class ReelClip(_Model):
    shot_id: str
    sha256: str
    manifest_uri: str | None
    duration_s: float
    generator: str
    cost_usd: float


class ReelManifest(_Model):
    schema_version: int = SCHEMA_VERSION
    kind: str = "reel"
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    storyboard: StoryboardRef
    transition: str
    transition_seconds: float
    clips: list[ReelClip]
    total_cost_usd: float
    post_processing: PostProcessingLineage
    published: PublishedLineage
    dagster: DagsterLineage


def to_json(manifest: BaseModel) -> str:
    return json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
