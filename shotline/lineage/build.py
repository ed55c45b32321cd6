"""Lineage manifests: one clip's or one reel's, assembled from what each stage recorded."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from shotline.finishing import CutReelFacts, FinishedClipFacts
from shotline.generators.cache import GeneratedClipFacts
from shotline.images import SourcedImageFacts
from shotline.manifest import (
    ClipManifest,
    DagsterLineage,
    GenerationLineage,
    GenerationTimings,
    ImageLineage,
    PostProcessingLineage,
    PromptLineage,
    PublishedLineage,
    ReelClip,
    ReelManifest,
    ShotRef,
    StoryboardRef,
)
from shotline.prompts import RenderedPrompt
from shotline.storyboard import STORYBOARD_FILE, Shot, Storyboard


@cache
def package_version() -> str:
    try:
        return version("shotline")
    except PackageNotFoundError:
        return "unknown"


def storyboard_ref(storyboard: Storyboard) -> StoryboardRef:
    return StoryboardRef(
        id=storyboard.id,
        title=storyboard.title,
        file=f"{storyboard.id}/{STORYBOARD_FILE}",
        file_sha256=storyboard.file_sha256,
    )


def clip_manifest(
    storyboard: Storyboard,
    shot: Shot,
    *,
    image: SourcedImageFacts,
    prompt: RenderedPrompt,
    generation: GeneratedClipFacts,
    finishing: FinishedClipFacts,
    published: Mapping[str, Any],
    run_id: str | None,
    code_versions: dict[str, str],
    upstream_data_versions: dict[str, str],
) -> dict[str, Any]:
    """The manifest of one clip, from what each stage recorded."""
    result = generation.result
    render = finishing.render
    manifest = ClipManifest(
        storyboard=storyboard_ref(storyboard),
        shot=ShotRef(
            id=shot.id, index=shot.index, spec=shot.model_dump(mode="json"), spec_sha256=storyboard.shot_spec_hash(shot)
        ),
        take=generation.take,
        image=ImageLineage(
            origin=image.origin,
            origin_kind=image.origin_kind,
            source_sha256=image.source_sha256,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
        ),
        prompt=PromptLineage(
            template=prompt.template_name,
            template_sha256=prompt.template_sha256,
            variables=prompt.variables,
            text=prompt.text,
        ),
        generation=GenerationLineage(
            generator=result.generator,
            preview=result.preview,
            model=result.model,
            request_id=result.request_id,
            clip_key=generation.clip_key,
            cache_hit=generation.cache_hit,
            parameters=result.parameters,
            timings=GenerationTimings.model_validate(result.timings),
            cost_usd=result.cost_usd,
            sha256=generation.sha256,
            width=result.width,
            height=result.height,
            fps=result.fps,
            duration_s=result.duration_s,
        ),
        post_processing=PostProcessingLineage(
            steps=[*render.steps, finishing.thumbnail],
            encoder=render.encoder,
            sha256=finishing.sha256,
            width=render.width,
            height=render.height,
            duration_s=render.duration_s,
        ),
        published=PublishedLineage.model_validate(published),
        dagster=DagsterLineage(
            run_id=run_id,
            partition_key=shot.partition_key,
            code_versions={**code_versions, "shotline": package_version()},
            upstream_data_versions=upstream_data_versions,
        ),
    )
    return manifest.model_dump(mode="json")


def reel_manifest(
    storyboard: Storyboard,
    *,
    clips: list[ReelClip],
    reel: CutReelFacts,
    published: Mapping[str, Any],
    run_id: str | None,
    code_version: str,
) -> dict[str, Any]:
    render = reel.render
    manifest = ReelManifest(
        storyboard=storyboard_ref(storyboard),
        transition=render.transition,
        transition_seconds=render.transition_seconds,
        clips=clips,
        total_cost_usd=round(sum(c.cost_usd for c in clips), 2),
        post_processing=PostProcessingLineage(
            steps=render.steps,
            encoder=render.encoder,
            sha256=reel.sha256,
            width=render.width,
            height=render.height,
            duration_s=render.duration_s,
        ),
        published=PublishedLineage.model_validate(published),
        dagster=DagsterLineage(
            run_id=run_id,
            partition_key=storyboard.id,
            code_versions={"storyboard_reel": code_version, "shotline": package_version()},
            upstream_data_versions={c.shot_id: c.sha256 for c in clips},
        ),
    )
    return manifest.model_dump(mode="json")
