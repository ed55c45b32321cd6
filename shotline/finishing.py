"""Finishing, cached: a raw clip rendered to a shot's deliverable (plus thumbnail), and a storyboard's final
clips cut into its reel. The same inputs and spec never render twice."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from shotline.credentials.manifest import (
    ClipProvenance,
    ReelPart,
    ReelProvenance,
    SourceFile,
    clip_plan,
    reel_plan,
)
from shotline.credentials.report import SigningReport
from shotline.errors import MediaError
from shotline.generators.base import GenerationOutcome
from shotline.hashing import sha256_file, stable_hash
from shotline.manifest import ReelClip
from shotline.media.deliverable import Expected
from shotline.media.encoding import FPS
from shotline.media.finish_spec import finished_frames
from shotline.media.frames import frame_size
from shotline.media.postprocess import FinishResult, FinishSpec, LogoSpec, MusicSpec, make_thumbnail, render_final
from shotline.media.reel import REEL_VIDEO_VERSION, ReelResult, planned_duration, render_reel
from shotline.store import StoredObject, WorkStore
from shotline.storyboard import Shot, Storyboard, resolve_inside

if TYPE_CHECKING:
    from shotline.credentials.signing import ContentSigner

_Rendered = TypeVar("_Rendered", "FinishedClip", "CutReel")
FINAL_RECORDS = "finals"
REEL_RECORDS = "reels"
# Bump when the render recipe changes what comes out for the same inputs: old cache entries then miss.
RENDER_VERSION = "2"


def finish_spec_for(
    storyboard: Storyboard,
    shot: Shot,
    *,
    generator: str,
    model: str | None,
    request_id: str | None,
    lineage_uri: str | None = None,
    take: int | None = None,
) -> FinishSpec:
    """`lineage_uri`: where the shot's latest.json is published (shotline.publish.lineage_uri). The file
    carries it with storyboard and shot, a key that does not depend on its own sha256: the manifest of this
    very file is `<sha12>.json` beside that latest.json, sha12 being the start of the file's sha256.
    `take`: the take of the generated clip (default: the shot's); every take is its own deliverable."""
    location = lineage_uri or f"{storyboard.id}/{shot.id}/latest.json"
    tags = {
        "storyboard": storyboard.id,
        "shot": shot.id,
        "take": str(shot.take if take is None else take),
        "generator": generator,
        "lineage": location,
        "comment": f"shotline {storyboard.id}/{shot.id} lineage: {location}",
    }
    if model:
        tags["model"] = model
    if request_id:
        tags["request_id"] = request_id
    return FinishSpec(
        format=shot.format,
        resolution=shot.resolution,
        fit=shot.fit,
        # A generator may run a frame or two long (fal returns 6.04 s for 6 s): the deliverable keeps what
        # was asked for, so its duration is the requested one minus the trim.
        trim=shot.trim or (0.0, float(shot.duration)),
        fade=shot.fade,
        caption=shot.caption,
        loudness_lufs=shot.loudness_lufs,
        title=f"{storyboard.title}: {shot.id}",
        tags=tags,
        # IDRs where the reel's crossfades begin and end, so the reel copies this clip between them
        reel_transition_frames=reel_transition_frames(storyboard),
    )


def reel_transition_frames(storyboard: Storyboard) -> int | None:
    """The storyboard reel's crossfade in whole frames; None for a cut reel (which copies whole clips)."""
    if storyboard.reel.transition == "cut":
        return None
    return round(storyboard.reel.transition_seconds * FPS) or None


def with_shot_finishing(spec: FinishSpec, storyboard: Storyboard, shot: Shot) -> FinishSpec:
    """`spec` plus the shot's own finishing options: contain fill, speed, caption placement and timing,
    logo and music bed (their files resolved inside the storyboard folder), and a trim to the requested
    duration when the shot has none."""
    extra: dict[str, Any] = {
        # Exactly the requested length: a generator may return a frame more than asked for.
        "trim": spec.trim if spec.trim is not None else (0.0, float(shot.duration)),
        "fill": shot.fill,
        "speed": shot.speed,
        "caption_position": shot.caption_position,
        "caption_start": shot.caption_start,
        "caption_end": shot.caption_end,
        "effects": shot.effects,
    }
    if shot.logo is not None:
        extra["logo"] = LogoSpec(
            path=resolve_inside(storyboard.folder, shot.logo.image, what="logo"),
            position=shot.logo.position,
            scale=shot.logo.scale,
            opacity=shot.logo.opacity,
        )
    if shot.music is not None:
        extra["music"] = MusicSpec(
            path=resolve_inside(storyboard.folder, shot.music.file, what="music"),
            level_db=shot.music.level_db,
            loop=shot.music.loop,
        )
    return FinishSpec.model_validate({**dict(spec), **extra})


def clip_provenance(
    storyboard: Storyboard,
    shot: Shot,
    generation: GenerationOutcome,
    *,
    take: int,
    still: SourceFile,
    raw: SourceFile,
    lineage_uri: str,
) -> ClipProvenance:
    """What the deliverable's content credentials say it was made from; MediaError when `still` is not the
    image the clip was generated from (its credentials would name the wrong input)."""
    recorded = generation.parameters.get("image_sha256")
    if recorded and recorded != still.sha256:
        raise MediaError(
            f"{storyboard.id}/{shot.id}: the still {still.sha256[:12]} is not the image the clip was generated from "
            f"({str(recorded)[:12]}): materialize raw_clip again"
        )
    return ClipProvenance(
        storyboard_id=storyboard.id,
        shot_id=shot.id,
        take=take,
        generator=generation.generator,
        preview=generation.preview,
        model=generation.model,
        request_id=generation.request_id,
        lineage_uri=lineage_uri,
        still=still,
        raw=raw,
    )


def reel_provenance(
    storyboard: Storyboard, clips: list[tuple[str, Path, str]], entries: list[ReelClip], *, lineage_uri: str
) -> ReelProvenance:
    """What the reel's content credentials say it was cut from: each clip's signed deliverable (`clips`, as
    cut_reel takes them) with its reel manifest entry."""
    by_shot = {e.shot_id: e for e in entries}
    return ReelProvenance(
        storyboard_id=storyboard.id,
        lineage_uri=lineage_uri,
        clips=[
            ReelPart(
                shot_id=shot_id,
                file=SourceFile(path=path, sha256=sha),
                preview=by_shot[shot_id].generator == "preview",
                manifest_uri=by_shot[shot_id].manifest_uri,
            )
            for shot_id, path, sha in clips
        ],
    )


def _spec_key(spec: FinishSpec) -> dict[str, Any]:
    """The spec as a cache key: the content of its logo and music files, not where they are."""
    key = spec.model_dump(mode="json", exclude={"logo": {"path"}, "music": {"path"}})
    if key.get("reel_transition_frames") is None:  # keys of specs made before the field existed stay valid
        key.pop("reel_transition_frames", None)
    if not spec.effects:
        del key["effects"]  # clips finished before effects existed keep their key
    for name in ("logo", "music"):
        part = getattr(spec, name)
        if part is not None:
            key[name]["sha256"] = sha256_file(part.path)
    return key


def final_duration(shot: Shot) -> float:
    """How long the shot's deliverable must last: the requested duration, minus the trim, over the speed."""
    trim = shot.trim if shot.trim is not None else (0.0, float(shot.duration))
    return finished_frames(trim, shot.speed, shot.effects or ()) / FPS


def expected_final(shot: Shot, *, source_has_audio: bool = True) -> Expected:
    """What the shot's deliverable must be, from the storyboard alone (for the asset checks)."""
    width, height = frame_size(shot.format, shot.resolution)
    return Expected(
        width=width,
        height=height,
        duration_s=final_duration(shot),
        loudness_lufs=shot.loudness_lufs,
        silent_ok=not source_has_audio and shot.music is None,
    )


def expected_reel(storyboard: Storyboard, *, silent_ok: bool = False) -> Expected:
    """What the storyboard's reel must be: the first shot's frame, every shot's deliverable joined by the
    reel's transition, one chapter per shot."""
    first = storyboard.shots[0]
    width, height = frame_size(first.format, first.resolution)
    durations = [final_duration(s) for s in storyboard.shots]
    return Expected(
        width=width,
        height=height,
        duration_s=planned_duration(durations, storyboard.reel.transition, storyboard.reel.transition_seconds),
        loudness_lufs=first.loudness_lufs,
        silent_ok=silent_ok,
        chapters=[s.id for s in storyboard.shots],
    )


class FinishedClipFacts(BaseModel):
    """A finished clip as later stages record it: without where one host keeps its files."""

    sha256: str
    size: int
    thumbnail_sha256: str
    render: FinishResult
    thumbnail: dict[str, Any]
    cache_hit: bool = False
    credentials: SigningReport | None = None  # None: finished with signing off (SHOTLINE_C2PA=off)


class FinishedClip(FinishedClipFacts):
    path: Path
    thumbnail_path: Path


def finish_clip(
    raw: Path,
    raw_sha256: str,
    spec: FinishSpec,
    store: WorkStore,
    label: str,
    *,
    signer: ContentSigner | None = None,
    provenance: ClipProvenance | None = None,
) -> FinishedClip:
    """Render, then (with a `signer`) sign the deliverable with its `provenance`: the signed file is what is
    stored and handed on, so its sha256 (and every name made from it) describes the signed bytes."""
    parts: dict[str, Any] = {"raw": raw_sha256, "spec": _spec_key(spec), "render": RENDER_VERSION}
    if signer is not None:
        if provenance is None:
            raise ValueError("signing a clip needs its provenance")
        # which signer and what the manifest says: a render signed otherwise (or unsigned) is another file
        parts["credentials"] = {**signer.identity(), "provenance": provenance.key()}
    key = stable_hash(parts)
    cached = _cached(store, FINAL_RECORDS, key, FinishedClip)
    if cached is not None:
        return cached
    with store.scratch(f"finish-{label}") as work:
        render = render_final(raw, spec, work / "final.mp4", work)
        thumbnail = make_thumbnail(work / "final.mp4", work / "thumb.jpg", spec.fade)
        deliverable, credentials = work / "final.mp4", None
        if signer is not None and provenance is not None:
            plan = clip_plan(provenance, render, title=spec.title or label)
            credentials = signer.sign(deliverable, work / "signed.mp4", plan)
            deliverable = work / "signed.mp4"
            render = render.model_copy(update={"steps": [*render.steps, credentials.step()]})
        video = store.put_file(deliverable, ".mp4")
        thumb = store.put_file(work / "thumb.jpg", ".jpg")
    done = FinishedClip(
        **_stored_fields(video, thumb),
        render=render,
        thumbnail=thumbnail,
        credentials=credentials,
    )
    store.put_record(FINAL_RECORDS, key, done.model_dump(mode="json"))
    return done


def _stored_fields(video: StoredObject, thumb: StoredObject) -> dict[str, Any]:
    return {
        "sha256": video.sha256,
        "path": video.path,
        "size": video.path.stat().st_size,
        "thumbnail_sha256": thumb.sha256,
        "thumbnail_path": thumb.path,
    }


def _cached(store: WorkStore, kind: str, key: str, model: type[_Rendered]) -> _Rendered | None:
    """A render recorded under `key` whose video and thumbnail are both still in the store."""
    record = store.get_record(kind, key)
    if record is None:
        return None
    done = model.model_validate(record)
    video, thumb = store.get(done.sha256, ".mp4"), store.get(done.thumbnail_sha256, ".jpg")
    if video is None or thumb is None:
        return None
    return done.model_copy(update={"path": video.path, "thumbnail_path": thumb.path, "cache_hit": True})


class CutReelFacts(BaseModel):
    """A cut reel as later stages record it: without where one host keeps its files."""

    sha256: str
    size: int
    thumbnail_sha256: str
    render: ReelResult
    cache_hit: bool = False
    credentials: SigningReport | None = None  # None: cut with signing off (SHOTLINE_C2PA=off)


class CutReel(CutReelFacts):
    path: Path
    thumbnail_path: Path


def cut_reel(
    storyboard: Storyboard,
    clips: list[tuple[str, Path, str]],
    store: WorkStore,
    *,
    signer: ContentSigner | None = None,
    provenance: ReelProvenance | None = None,
) -> CutReel:
    """`clips`: (shot id, path, sha256) of each final clip, in shot order. With a `signer`, the reel is signed
    with its `provenance` (each signed clip an ingredient) before it is stored."""
    loudness = storyboard.shots[0].loudness_lufs
    parts: dict[str, Any] = {
        "clips": [(shot_id, sha) for shot_id, _, sha in clips],
        "reel": storyboard.reel.render_key(),
        "title": storyboard.title,
        "loudness": loudness,
        "render": RENDER_VERSION,
        "reel_video": REEL_VIDEO_VERSION,
    }
    if signer is not None:
        if provenance is None:
            raise ValueError("signing a reel needs its provenance")
        parts["credentials"] = {**signer.identity(), "provenance": provenance.key()}
    key = stable_hash(parts)
    cached = _cached(store, REEL_RECORDS, key, CutReel)
    if cached is not None:
        return cached
    with store.scratch(f"reel-{storyboard.id}") as work:
        render = render_reel(
            [path for _, path, _ in clips],
            work / "reel.mp4",
            work,
            transition=storyboard.reel.transition,
            transition_seconds=storyboard.reel.transition_seconds,
            loudness_lufs=loudness,
            chapters=[shot_id for shot_id, _, _ in clips],
            durations=[final_duration(storyboard.shot(shot_id)) for shot_id, _, _ in clips],
            title=storyboard.title,
            tags={"storyboard": storyboard.id, "comment": f"shotline {storyboard.id} reel"},
        )
        # From the middle of the longest shot, away from its own fades and the dissolves around it.
        longest = max(render.chapters, key=lambda c: c.end_s - c.start_s)
        fade = max(s.fade for s in storyboard.shots) + render.transition_seconds
        make_thumbnail(work / "reel.mp4", work / "thumb.jpg", fade, window=(longest.start_s, longest.end_s))
        deliverable, credentials = work / "reel.mp4", None
        if signer is not None and provenance is not None:
            credentials = signer.sign(
                deliverable, work / "signed.mp4", reel_plan(provenance, render, title=storyboard.title)
            )
            deliverable = work / "signed.mp4"
            render = render.model_copy(update={"steps": [*render.steps, credentials.step()]})
        video = store.put_file(deliverable, ".mp4")
        thumb = store.put_file(work / "thumb.jpg", ".jpg")
    done = CutReel(
        **_stored_fields(video, thumb),
        render=render,
        credentials=credentials,
    )
    store.put_record(REEL_RECORDS, key, done.model_dump(mode="json"))
    return done
