"""Generating through the clip cache: a clip whose inputs did not change is never generated twice.

The cache key is the generator, model, image sha256, rendered prompt, duration and resolution, and the shot's
take from take 2 on: raising the take asks for a new generation, going back finds the earlier one. A hit makes
no HTTP call, costs nothing now, and keeps the original request id and cost for the lineage.

Nothing enters the cache before it is decoded and held to what was asked (`verify_clip`): duration within two
frames, the resolution's short side, the still's orientation, an audio track, and what the generator (and
the provider's own output metadata, `check_clip`'s claims) said about the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shotline.clip_index import ClipIndex
from shotline.generators.base import GenerationOutcome, GenerationRequest, GenerationResult, Generator, LogFn
from shotline.generators.clip_check import check_clip
from shotline.hashing import stable_hash
from shotline.images import SourcedImage, image_url_for_fal
from shotline.media.clip_facts import ClipFacts
from shotline.store import StoredObject, WorkStore
from shotline.storyboard import FIRST_TAKE, Shot


def clip_key(
    *,
    generator: str,
    model: str | None,
    image_sha256: str,
    prompt: str,
    duration: int,
    resolution: str,
    take: int = FIRST_TAKE,
) -> str:
    parts: dict[str, object] = {
        "generator": generator,
        "model": model,
        "image_sha256": image_sha256,
        "prompt": prompt,
        "duration": duration,
        "resolution": resolution,
    }
    if take != FIRST_TAKE:  # take 1 keeps the keys clips had before takes existed: they stay cached
        parts["take"] = take
    return stable_hash(parts)


def shot_clip_key(shot: Shot, image_sha256: str, prompt: str, *, generator: str, model: str | None) -> str:
    """The clip key of `shot` made by `generator` from the still `image_sha256` and the rendered `prompt`."""
    return clip_key(
        generator=generator,
        model=model,
        image_sha256=image_sha256,
        prompt=prompt,
        duration=shot.duration,
        resolution=shot.resolution,
        take=shot.take,
    )


def request_for_shot(
    storyboard_id: str, shot: Shot, image: SourcedImage, prompt: str, generator: Generator
) -> GenerationRequest:
    """What `generator` is asked to make for `shot` from its sourced still and rendered prompt."""
    return GenerationRequest(
        storyboard_id=storyboard_id,
        shot_id=shot.id,
        clip_key=shot_clip_key(shot, image.sha256, prompt, generator=generator.name, model=generator.model),
        prompt=prompt,
        image_path=image.path,
        image_sha256=image.sha256,
        image_width=image.width,
        image_height=image.height,
        # only fal fetches the still by URL; the other generators read the stored file
        image_url=image_url_for_fal(image) if generator.name == "fal" else None,
        duration=shot.duration,
        resolution=shot.resolution,
    )


class GeneratedClipFacts(BaseModel):
    """A generated clip as later stages record it: without where one host keeps the file."""

    clip_key: str
    result: GenerationOutcome
    sha256: str
    size: int
    cache_hit: bool
    generated_at: str
    checked: ClipFacts | None = None  # what the decode check found (None in records older than it)
    take: int = FIRST_TAKE  # which take of its shot this clip is (part of its clip key from take 2)

    @property
    def cost_now_usd(self) -> float:
        """What this materialization spent: nothing when the clip came from the cache."""
        return 0.0 if self.cache_hit else self.result.cost_usd

    def metadata(self) -> dict[str, object]:
        """Flat values for materialization metadata: the file, who made it, what it cost now and first, its
        shape, and, when known, the model, fal's request id and timings, and what decoding it found."""
        result = self.result
        metadata: dict[str, object] = {
            "sha256": self.sha256,
            "size_bytes": self.size,
            "generator": result.generator,
            "preview": result.preview,
            "cost_usd": self.cost_now_usd,
            "original_cost_usd": result.cost_usd,
            "cache_hit": self.cache_hit,
            "duration_s": result.duration_s,
            "width": result.width,
            "height": result.height,
            "fps": result.fps,
            "clip_key": self.clip_key,
            "take": self.take,
        }
        if result.model:
            metadata["model"] = result.model
        if result.request_id:
            metadata["fal_request_id"] = result.request_id
        if "inference_s" in result.timings:
            metadata["inference_time_s"] = float(result.timings["inference_s"])
        if result.timings:
            metadata["timings"] = dict(result.timings)
        if self.checked is not None:
            metadata["num_frames"] = self.checked.frames
            metadata["has_audio"] = self.checked.has_audio
        return metadata


class GeneratedClip(GeneratedClipFacts):
    result: GenerationResult
    path: Path


def generate_clip(
    request: GenerationRequest,
    generator: Generator,
    store: WorkStore,
    index: ClipIndex,
    log: LogFn,
    *,
    take: int = FIRST_TAKE,
) -> GeneratedClip:
    """`take`: the shot's take that `request.clip_key` was made for (see `clip_key`)."""
    cached = cached_clip(request.clip_key, store, index)
    if cached is not None:
        log(f"cache hit for clip {request.clip_key[:12]}: reusing {cached.sha256[:12]}, no generation")
        return cached.model_copy(update={"take": take})
    with store.scratch(f"generate-{request.storyboard_id}-{request.shot_id}") as workdir:
        result = generator.generate(request, workdir, log)
        # a generator that decoded its clip already (fal, to hold it to fal's claims) says so: decode once
        checked = result.checked if result.checked is not None else verify_clip(result, request)
        stored = store.put_file(result.video_path, ".mp4")
    clip = GeneratedClip(
        clip_key=request.clip_key,
        result=result.model_copy(update={"video_path": stored.path}),
        sha256=stored.sha256,
        path=stored.path,
        size=stored.path.stat().st_size,
        cache_hit=False,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        checked=checked,
        take=take,
    )
    index.put(request.clip_key, clip.sha256, clip.model_dump(mode="json"))
    return clip


def cached_clip(key: str, store: WorkStore, index: ClipIndex) -> GeneratedClip | None:
    record = index.get(key)
    if record is None:
        return None
    clip = GeneratedClip.model_validate(record)
    obj: StoredObject | None = store.get(clip.sha256, ".mp4")
    if obj is None:
        return None
    return clip.model_copy(
        update={"cache_hit": True, "path": obj.path, "result": clip.result.model_copy(update={"video_path": obj.path})}
    )


def verify_clip(result: GenerationResult, request: GenerationRequest) -> ClipFacts:
    """Decode what came back and hold it to what was asked, before anyone pays to post-process it: duration
    within two frames of the request, short side of the resolution, orientation of the still, an audio
    track; and what the generator said about it."""
    claims: dict[str, Mapping[str, Any]] = {
        f"the {result.generator} generator": {
            "width": result.width,
            "height": result.height,
            "fps": result.fps,
            "duration": result.duration_s,
        }
    }
    return check_clip(result.video_path, request, claims=claims)
