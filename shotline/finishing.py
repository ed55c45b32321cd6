"""Finishing, cached: a raw clip rendered to a shot's deliverable (plus thumbnail), and a storyboard's final
clips cut into its reel. The same inputs and spec never render twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shotline.hashing import stable_hash
from shotline.media.postprocess import FinishResult, FinishSpec, make_thumbnail, render_final
from shotline.media.reel import ReelResult, render_reel
from shotline.store import WorkStore
from shotline.storyboard import Shot, Storyboard

FINAL_RECORDS = "finals"
REEL_RECORDS = "reels"
# Bump when the render recipe changes what comes out for the same inputs: old cache entries then miss.
RENDER_VERSION = "1"


def finish_spec_for(
    storyboard: Storyboard, shot: Shot, *, generator: str, model: str | None, request_id: str | None
) -> FinishSpec:
    tags = {
        "storyboard": storyboard.id,
        "shot": shot.id,
        "generator": generator,
        "comment": f"shotline {storyboard.id}/{shot.id} lineage: {storyboard.id}/{shot.id}/latest.json",
    }
    if model:
        tags["model"] = model
    if request_id:
        tags["request_id"] = request_id
    return FinishSpec(
        format=shot.format,
        resolution=shot.resolution,
        fit=shot.fit,
        trim=shot.trim,
        fade=shot.fade,
        caption=shot.caption,
        loudness_lufs=shot.loudness_lufs,
        title=f"{storyboard.title}: {shot.id}",
        tags=tags,
    )


class FinishedClip(BaseModel):
    sha256: str
    path: Path
    size: int
    thumbnail_sha256: str
    thumbnail_path: Path
    render: FinishResult
    thumbnail: dict[str, Any]
    cache_hit: bool = False


def finish_clip(raw: Path, raw_sha256: str, spec: FinishSpec, store: WorkStore, label: str) -> FinishedClip:
    key = stable_hash({"raw": raw_sha256, "spec": spec.model_dump(mode="json"), "render": RENDER_VERSION})
    record = store.get_record(FINAL_RECORDS, key)
    if record is not None:
        done = FinishedClip.model_validate(record)
        video, thumb = store.get(done.sha256, ".mp4"), store.get(done.thumbnail_sha256, ".jpg")
        if video and thumb:
            return done.model_copy(update={"path": video.path, "thumbnail_path": thumb.path, "cache_hit": True})
    with store.scratch(f"finish-{label}") as work:
        render = render_final(raw, spec, work / "final.mp4", work)
        thumbnail = make_thumbnail(work / "final.mp4", work / "thumb.jpg", spec.fade)
        video = store.put_file(work / "final.mp4", ".mp4")
        thumb = store.put_file(work / "thumb.jpg", ".jpg")
    done = FinishedClip(
        sha256=video.sha256,
        path=video.path,
        size=video.path.stat().st_size,
        thumbnail_sha256=thumb.sha256,
        thumbnail_path=thumb.path,
        render=render,
        thumbnail=thumbnail,
    )
    store.put_record(FINAL_RECORDS, key, done.model_dump(mode="json"))
    return done


class CutReel(BaseModel):
    sha256: str
    path: Path
    size: int
    thumbnail_sha256: str
    thumbnail_path: Path
    render: ReelResult
    cache_hit: bool = False


def cut_reel(storyboard: Storyboard, clips: list[tuple[str, Path, str]], store: WorkStore) -> CutReel:
    """`clips`: (shot id, path, sha256) of each final clip, in shot order."""
    loudness = storyboard.shots[0].loudness_lufs
    key = stable_hash(
        {
            "clips": [(shot_id, sha) for shot_id, _, sha in clips],
            "reel": storyboard.reel.model_dump(),
            "title": storyboard.title,
            "loudness": loudness,
            "render": RENDER_VERSION,
        }
    )
    record = store.get_record(REEL_RECORDS, key)
    if record is not None:
        done = CutReel.model_validate(record)
        video, thumb = store.get(done.sha256, ".mp4"), store.get(done.thumbnail_sha256, ".jpg")
        if video and thumb:
            return done.model_copy(update={"path": video.path, "thumbnail_path": thumb.path, "cache_hit": True})
    with store.scratch(f"reel-{storyboard.id}") as work:
        render = render_reel(
            [path for _, path, _ in clips],
            work / "reel.mp4",
            work,
            transition=storyboard.reel.transition,
            transition_seconds=storyboard.reel.transition_seconds,
            loudness_lufs=loudness,
            chapters=[shot_id for shot_id, _, _ in clips],
            title=storyboard.title,
            tags={"storyboard": storyboard.id, "comment": f"shotline {storyboard.id} reel"},
        )
        make_thumbnail(work / "reel.mp4", work / "thumb.jpg", storyboard.reel.transition_seconds)
        video = store.put_file(work / "reel.mp4", ".mp4")
        thumb = store.put_file(work / "thumb.jpg", ".jpg")
    done = CutReel(
        sha256=video.sha256,
        path=video.path,
        size=video.path.stat().st_size,
        thumbnail_sha256=thumb.sha256,
        thumbnail_path=thumb.path,
        render=render,
    )
    store.put_record(REEL_RECORDS, key, done.model_dump(mode="json"))
    return done
