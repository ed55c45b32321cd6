"""Generation with a content-addressed cache: a clip whose inputs did not change is never generated twice.

The cache key is the generator, model, image sha256, rendered prompt, duration and resolution. A hit makes
no HTTP call, costs nothing now, and keeps the original request id and cost for the lineage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.generators.base import GenerationRequest, GenerationResult, Generator, LogFn
from shotline.hashing import stable_hash
from shotline.media.probe import probe
from shotline.store import StoredObject, WorkStore

CLIP_RECORDS = "clips"
# A generated clip may run a frame or two past the requested duration (fal returns 6.04 s for 6 s).
DURATION_TOLERANCE_S = 0.15


def clip_key(
    *, generator: str, model: str | None, image_sha256: str, prompt: str, duration: int, resolution: str
) -> str:
    return stable_hash(
        {
            "generator": generator,
            "model": model,
            "image_sha256": image_sha256,
            "prompt": prompt,
            "duration": duration,
            "resolution": resolution,
        }
    )


class GeneratedClip(BaseModel):
    clip_key: str
    result: GenerationResult
    sha256: str
    path: Path
    size: int
    cache_hit: bool
    generated_at: str

    @property
    def cost_now_usd(self) -> float:
        """What this materialization spent: nothing when the clip came from the cache."""
        return 0.0 if self.cache_hit else self.result.cost_usd


def generate_clip(request: GenerationRequest, generator: Generator, store: WorkStore, log: LogFn) -> GeneratedClip:
    cached = cached_clip(request.clip_key, store)
    if cached is not None:
        log(f"cache hit for clip {request.clip_key[:12]}: reusing {cached.sha256[:12]}, no generation")
        return cached
    with store.scratch(f"generate-{request.storyboard_id}-{request.shot_id}") as workdir:
        result = generator.generate(request, workdir, log)
        verify_clip(result, request)
        stored = store.put_file(result.video_path, ".mp4")
    clip = GeneratedClip(
        clip_key=request.clip_key,
        result=result.model_copy(update={"video_path": stored.path}),
        sha256=stored.sha256,
        path=stored.path,
        size=stored.path.stat().st_size,
        cache_hit=False,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    store.put_record(CLIP_RECORDS, request.clip_key, clip.model_dump(mode="json"))
    return clip


def cached_clip(key: str, store: WorkStore) -> GeneratedClip | None:
    record = store.get_record(CLIP_RECORDS, key)
    if record is None:
        return None
    clip = GeneratedClip.model_validate(record)
    obj: StoredObject | None = store.get(clip.sha256, ".mp4")
    if obj is None:
        return None
    return clip.model_copy(
        update={"cache_hit": True, "path": obj.path, "result": clip.result.model_copy(update={"video_path": obj.path})}
    )


def verify_clip(result: GenerationResult, request: GenerationRequest) -> None:
    """Decode what came back and hold it to what was asked, before anyone pays to post-process it."""
    info = probe(result.video_path)
    where = f"storyboard {request.storyboard_id!r}, shot {request.shot_id!r}"
    if abs(info.duration_s - request.duration) > DURATION_TOLERANCE_S:
        raise MediaError(f"{where}: generated clip lasts {info.duration_s:.3f} s, asked for {request.duration} s")
    if (info.width, info.height) != (result.width, result.height):
        raise MediaError(
            f"{where}: generated clip is {info.width}x{info.height}, "
            f"the generator reported {result.width}x{result.height}"
        )
    if min(info.width, info.height) != {"480p": 480, "720p": 720}[request.resolution]:
        raise MediaError(f"{where}: generated clip is {info.width}x{info.height}, not {request.resolution}")
    if not info.has_audio:
        raise MediaError(f"{where}: generated clip has no audio track")
