"""Which finals a storyboard's reel cuts: each shot's published final, and with `reel.require_approval` only
approved ones; anything else is refused before encoding, naming the shots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from shotline.errors import ShotlineError
from shotline.manifest import ReelClip
from shotline.review import ReviewBook, ReviewState, Verdict
from shotline.stage_records import FinishedClipRecord, GeneratedClipRecord, PublishedClipRecord, StageRecord
from shotline.store import WorkStore
from shotline.storyboard import Storyboard, partition_key

R = TypeVar("R", bound=StageRecord)


class RecordLookup(Protocol):
    """The stage record of a partition's latest materialization of `record_type`'s stage, or None."""

    def __call__(self, record_type: type[R], partition_key: str) -> R | None: ...


class ReelNotReady(ShotlineError):
    """The reel cannot be cut yet; running it again changes nothing until the shots named are done."""

    def __init__(self, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.metadata = metadata or {}


@dataclass
class ReelClips:
    """The clips to cut, in shot order: (shot id, file, sha256), what the manifest says of each, and review."""

    files: list[tuple[str, Path, str]] = field(default_factory=list)
    entries: list[ReelClip] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "clips": len(self.files),
            "total_cost_usd": round(sum(e.cost_usd for e in self.entries), 2),
            "approved": sum(v.approved for v in self.verdicts.values()),
            "takes": ", ".join(f"{e.shot_id}={e.take}" for e in self.entries),
        }


def reel_clips(storyboard: Storyboard, store: WorkStore, reviews: ReviewBook, latest: RecordLookup) -> ReelClips:
    """Every shot's published final, with its review verdict. Raises ReelNotReady naming the shots with no
    published clip, those whose latest final is not the published one, and (with `reel.require_approval`)
    those not approved."""
    chosen, missing, unpublished = ReelClips(), [], []
    for shot in storyboard.shots:
        key = partition_key(storyboard.id, shot.id)
        final = latest(FinishedClipRecord, key)
        published = latest(PublishedClipRecord, key)
        generated = published.generation if published else None
        if published is not None and generated is None:  # published before records named their clip
            raw = latest(GeneratedClipRecord, key)
            generated = raw.clip if raw else None
        video = store.get(final.clip.sha256, ".mp4") if final else None
        if final is None or published is None or generated is None or video is None:
            missing.append(shot.id)
            continue
        if published.published.sha256 != final.clip.sha256:
            unpublished.append(
                f"{shot.id} (final clip {final.clip.sha256[:12]}, published {published.published.sha256[:12]})"
            )
            continue
        chosen.verdicts[shot.id] = verdict = reviews.verdict(storyboard.id, shot.id, final.clip.sha256)
        chosen.files.append((shot.id, video.path, final.clip.sha256))
        chosen.entries.append(
            ReelClip(
                shot_id=shot.id,
                take=published.take,
                approval=verdict.approval(),
                sha256=final.clip.sha256,
                manifest_uri=published.published.manifest.uri,
                manifest_sha256=published.published.manifest.sha256,
                duration_s=final.clip.render.duration_s,
                generator=generated.result.generator,
                cost_usd=generated.result.cost_usd,
            )
        )
    problems = []
    if missing:
        problems.append(f"no published clip yet for {', '.join(missing)}: run clip_job for those shots first")
    if unpublished:
        problems.append(
            f"the latest final clip is not the published one for {', '.join(unpublished)}: materialize "
            "published_clip for those shots (a reel cuts only what was published and reviewed)"
        )
    if problems:
        raise ReelNotReady(f"storyboard {storyboard.id!r}: {'; '.join(problems)}")
    if storyboard.reel.require_approval:
        _refuse_unapproved(storyboard.id, chosen)
    return chosen


def _refuse_unapproved(storyboard_id: str, chosen: ReelClips) -> None:
    """Unless every clip is approved: ReelNotReady naming the shots awaiting review and the rejected ones with
    their notes."""
    clips = {e.shot_id: e for e in chosen.entries}

    def listed(state: ReviewState) -> list[str]:
        return [
            f"{shot_id} (take {clips[shot_id].take}, {clips[shot_id].sha256[:12]}"
            + (f", {v.describe().removeprefix(state.value + ' ')}" if v.decision else "")
            + ")"
            for shot_id, v in chosen.verdicts.items()
            if v.state == state
        ]

    awaiting, rejected = listed(ReviewState.AWAITING), listed(ReviewState.REJECTED)
    if not awaiting and not rejected:
        return
    parts = [f"awaiting review: {', '.join(awaiting)}"] if awaiting else []
    parts += [f"rejected: {', '.join(rejected)}"] if rejected else []
    raise ReelNotReady(
        f"storyboard {storyboard_id!r} cuts only approved clips (reel.require_approval); not approved: "
        f"{'; '.join(parts)}. Review them (`shotline review "
        f"{storyboard_id}`), approve with `shotline approve {storyboard_id}/<shot>` or review_job, then run "
        "reel_job again",
        metadata={"awaiting_review": ", ".join(awaiting) or "none", "rejected": ", ".join(rejected) or "none"},
    )


def reel_video_metadata(steps: list[dict[str, Any]]) -> dict[str, object]:
    """How the reel's picture was made: smart (frames copied from the finals, transitions encoded) or full."""
    video = next((s for s in steps if s.get("step") == "video"), None)
    if video is None:  # cut before the smart render existed
        return {}
    meta: dict[str, object] = {"video_path": video["path"]}
    if video["path"] == "smart":
        meta |= {"copied_frames": video["copied_frames"], "encoded_frames": video["encoded_frames"]}
    elif video.get("smart_refused"):
        meta["smart_refused"] = "; ".join(video["smart_refused"])
    return meta
