"""What a deliverable's C2PA manifest says: how it was made (one action per thing done to it), from what
(ingredients), and shotline's own assertion leading back to its lineage.

- A fal clip: `c2pa.created` by the model (`trainedAlgorithmicMedia`) from the still (an `inputTo`
  ingredient), then each edit finishing made to the generated clip (the `parentOf` ingredient).
- A preview clip: `c2pa.created` by shotline's preview generator, an animation of the still with no generative
  model, so `composite` (of elements that may or may not be generated: the still's own origin is unknown).
- A reel: `c2pa.created` as a composite (`compositeWithTrainedAlgorithmicMedia` when any clip was generated),
  one `c2pa.placed` per signed clip (each a `componentOf` ingredient, its own manifest kept inside).

The edits come from the render's own step records (what was done, as the finish spec asked), so the asset
checks can recompute what a file must say (`clip_expectations`, `reel_expectations`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shotline.media.postprocess import FinishResult
from shotline.media.reel import ReelResult

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED = IPTC + "compositeWithTrainedAlgorithmicMedia"
COMPOSITE = IPTC + "composite"
LINEAGE_LABEL = "com.shotline.lineage"
LINEAGE_VERSION = 1
MANIFEST_RULE = "<first 12 hex digits of this file's sha256>.json, in the folder of lineage_uri"

Relationship = Literal["parentOf", "componentOf", "inputTo"]


def shotline_version() -> str:
    try:
        return version("shotline")
    except PackageNotFoundError:
        return "unknown"


def _shotline_agent() -> dict[str, str]:
    return {"name": "shotline", "version": shotline_version()}


def _edit(action: str, description: str) -> dict[str, Any]:
    return {"action": action, "softwareAgent": _shotline_agent(), "parameters": {"description": description}}


class SourceFile(BaseModel):
    """A file a deliverable was made from, with its content hash."""

    model_config = ConfigDict(frozen=True)

    path: Path
    sha256: str


class ClipProvenance(BaseModel):
    """What a finished clip was made from, as its manifest tells it."""

    model_config = ConfigDict(frozen=True)

    storyboard_id: str
    shot_id: str
    take: int = Field(1, ge=1)
    generator: str
    preview: bool
    model: str | None = None
    request_id: str | None = None  # fal's
    lineage_uri: str  # the shot's latest.json; the file's own manifest is MANIFEST_RULE beside it
    still: SourceFile
    raw: SourceFile

    def key(self) -> dict[str, Any]:
        """Everything the manifest depends on, without where the files are (for render cache keys)."""
        return self.model_dump(mode="json", exclude={"still": {"path"}, "raw": {"path"}})


class ReelPart(BaseModel):
    model_config = ConfigDict(frozen=True)

    shot_id: str
    file: SourceFile  # the clip's signed deliverable
    preview: bool
    manifest_uri: str | None = None  # its published lineage manifest


class ReelProvenance(BaseModel):
    model_config = ConfigDict(frozen=True)

    storyboard_id: str
    lineage_uri: str  # the reel's latest.json
    clips: list[ReelPart]

    def key(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"clips": {"__all__": {"file": {"path"}}}})


class PlannedIngredient(BaseModel):
    label: str  # what actions name in `parameters.ingredientIds`
    title: str
    relationship: Relationship
    format: str  # MIME type
    file: SourceFile

    def definition(self) -> dict[str, str]:
        return {"title": self.title, "relationship": self.relationship, "label": self.label}


class ManifestPlan(BaseModel):
    """A manifest to sign into one file, and the ingredient files the SDK reads while building it."""

    title: str
    source_type: str
    actions: list[dict[str, Any]]
    assertion: dict[str, Any]  # shotline's own, under LINEAGE_LABEL
    ingredients: list[PlannedIngredient]

    @property
    def action_names(self) -> list[str]:
        return [a["action"] for a in self.actions]

    def definition(self) -> dict[str, Any]:
        """The manifest definition the SDK's Builder takes."""
        return {
            "claim_generator_info": [_shotline_agent()],
            "title": self.title,
            "format": "video/mp4",
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": self.actions}},
                {"label": LINEAGE_LABEL, "data": self.assertion},
            ],
        }


class Expectations(BaseModel):
    """What a signed deliverable's manifest must say, recomputed from the records (not read from the file)."""

    source_type: str
    actions: list[str]
    ingredients: list[Relationship]  # in order
    lineage: dict[str, Any]  # entries the shotline assertion must have
    signer_serial: str | None = None


# --- a clip ----------------------------------------------------------------------------------------------


def clip_source_type(preview: bool) -> str:
    return COMPOSITE if preview else TRAINED


def created_action(*, preview: bool, model: str | None, request_id: str | None) -> dict[str, Any]:
    if preview:
        return {
            "action": "c2pa.created",
            "digitalSourceType": COMPOSITE,
            "softwareAgent": {**_shotline_agent(), "name": "shotline preview generator"},
            "parameters": {
                "ingredientIds": ["still"],
                "description": "a preview made offline by shotline: the still animated with a camera move over "
                "a quiet sound bed; no generative model was used",
            },
        }
    via = f" (fal request {request_id})" if request_id else ""
    return {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED,
        "softwareAgent": {"name": model or "unknown model"},
        "parameters": {
            "ingredientIds": ["still"],
            "description": f"generated by {model} on fal.ai from the still and the shot's prompt{via}",
        },
    }


def finishing_actions(render: FinishResult) -> list[dict[str, Any]]:
    """One action per edit finishing made, in the order it made them (from the render's step records)."""
    actions: list[dict[str, Any]] = []

    def add(action: str, description: str) -> None:
        actions.append(_edit(action, description))

    for step in render.steps:
        kind = step.get("step")
        if kind == "trim":
            add("c2pa.edited", f"trimmed to {step['start_s']:.3f}-{step['end_s']:.3f} s of the generated clip")
        elif kind == "speed":
            add("c2pa.edited", f"played at {step['factor']:g}x speed (audio pitch kept)")
        elif kind == "effect":
            params = ", ".join(f"{k}={v}" for k, v in step.get("params", {}).items())
            add(step.get("action", "c2pa.filtered"), f"effect {step['effect']}({params})")
        elif kind == "colour" and step.get("converted"):
            add("c2pa.color_adjustments", f"colour converted from {step['from']} to BT.709")
        elif kind == "fit":
            _fit_actions(step, add)
        elif kind == "caption":
            add("c2pa.edited", f"caption overlaid: {step['text']!r}")
        elif kind == "logo":
            add("c2pa.edited", "logo overlaid")
        elif kind == "fade":
            add("c2pa.filtered", f"faded in from and out to black over {step['video_in_s']:g} s, picture and sound")
        elif kind == "silent_audio":
            add("c2pa.edited", "a silent stereo track added (the generated clip had no sound)")
        elif kind == "music_bed":
            add("c2pa.edited", f"music bed mixed under the sound at {step['level_db']:g} dB")
        elif kind == "loudness" and "gain_db" in step:
            add("c2pa.filtered", f"loudness set to {step['target_lufs']:g} LUFS (EBU R128, {step['gain_db']:+.2f} dB)")
        elif kind == "stream_copy":
            add("c2pa.repackaged", "video stream copied into the deliverable's mp4 without re-encoding")
        elif kind == "encode":
            video = step.get("video")
            audio = step.get("audio", {})
            sound = f"AAC-LC {audio.get('bitrate_kbps')} kb/s" if isinstance(audio, dict) else "AAC"
            if isinstance(video, dict):
                add("c2pa.transcoded", f"encoded H.264 High crf {video['crf']} ({video['preset']}), {sound}")
            else:
                add("c2pa.transcoded", f"sound encoded {sound}; video copied")
    return actions


def _fit_actions(step: dict[str, Any], add: Any) -> None:
    source, frame, scaled = step["source"], step["frame"], step["scale_to"]
    if scaled != source:
        add("c2pa.resized", f"scaled {source[0]}x{source[1]} to {scaled[0]}x{scaled[1]}")
    if "crop" in step:
        add("c2pa.cropped", f"cropped to fill {frame[0]}x{frame[1]} ({step['fit']})")
    elif "letterbox" in step:
        add("c2pa.edited", f"letterboxed into {frame[0]}x{frame[1]} ({step.get('fill', 'black')} fill)")


def clip_plan(provenance: ClipProvenance, render: FinishResult, *, title: str) -> ManifestPlan:
    p = provenance
    edits = finishing_actions(render)
    if edits:  # what finishing worked on: the generated clip
        edits[0]["parameters"]["ingredientIds"] = ["generated"]
    made_by = "preview animation" if p.preview else "generated clip"
    return ManifestPlan(
        title=title,
        source_type=clip_source_type(p.preview),
        actions=[created_action(preview=p.preview, model=p.model, request_id=p.request_id), *edits],
        assertion={
            "version": LINEAGE_VERSION,
            "kind": "clip",
            "storyboard": p.storyboard_id,
            "shot": p.shot_id,
            "take": p.take,
            "generator": p.generator,
            "preview": p.preview,
            "model": p.model,
            "fal_request_id": p.request_id,
            "still_sha256": p.still.sha256,
            "raw_clip_sha256": p.raw.sha256,
            "lineage_uri": p.lineage_uri,
            "lineage_manifest": MANIFEST_RULE,
        },
        ingredients=[
            PlannedIngredient(
                label="still",
                title=f"{p.storyboard_id}/{p.shot_id} still {p.still.sha256[:12]}.png",
                relationship="inputTo",
                format="image/png",
                file=p.still,
            ),
            PlannedIngredient(
                label="generated",
                title=f"{p.storyboard_id}/{p.shot_id} {made_by} {p.raw.sha256[:12]}.mp4",
                relationship="parentOf",
                format="video/mp4",
                file=p.raw,
            ),
        ],
    )


def clip_expectations(
    render: FinishResult, *, storyboard_id: str, shot_id: str, preview: bool, request_id: str | None
) -> Expectations:
    return Expectations(
        source_type=clip_source_type(preview),
        actions=["c2pa.created", *(a["action"] for a in finishing_actions(render))],
        ingredients=["inputTo", "parentOf"],
        lineage={
            "kind": "clip",
            "storyboard": storyboard_id,
            "shot": shot_id,
            "preview": preview,
            "fal_request_id": request_id,
        },
    )


# --- a reel ----------------------------------------------------------------------------------------------


def reel_source_type(previews: list[bool]) -> str:
    return COMPOSITE if all(previews) else COMPOSITE_WITH_TRAINED


def reel_finishing_actions(render: ReelResult) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []

    def add(action: str, description: str) -> None:
        actions.append(_edit(action, description))

    for step in render.steps:
        kind = step.get("step")
        if kind == "conform" and any("conformed" in c for c in step.get("clips", [])):
            add("c2pa.resized", f"clips of another shape letterboxed into {step['frame'][0]}x{step['frame'][1]}")
        elif kind == "join" and step.get("transition_seconds"):
            add("c2pa.filtered", f"crossfades of {step['transition_seconds']:g} s between shots, picture and sound")
        elif kind == "loudness" and "gain_db" in step:
            add("c2pa.filtered", f"loudness set to {step['target_lufs']:g} LUFS (EBU R128, {step['gain_db']:+.2f} dB)")
        elif kind == "encode":
            video = step.get("video", {})
            add("c2pa.transcoded", f"encoded H.264 High crf {video.get('crf')} ({video.get('preset')}), AAC-LC")
    return actions


def reel_plan(provenance: ReelProvenance, render: ReelResult, *, title: str) -> ManifestPlan:
    p = provenance
    previews = [c.preview for c in p.clips]
    placed = [
        {
            "action": "c2pa.placed",
            "softwareAgent": _shotline_agent(),
            "parameters": {
                "ingredientIds": [f"clip-{i + 1}"],
                "description": f"shot {clip.shot_id} at {chapter.start_s:.3f}-{chapter.end_s:.3f} s",
            },
        }
        for i, (clip, chapter) in enumerate(zip(p.clips, render.chapters, strict=True))
    ]
    generated = sum(not v for v in previews)
    return ManifestPlan(
        title=title,
        source_type=reel_source_type(previews),
        actions=[
            {
                "action": "c2pa.created",
                "digitalSourceType": reel_source_type(previews),
                "softwareAgent": _shotline_agent(),
                "parameters": {
                    "description": f"the storyboard's {len(p.clips)} clips cut into one reel "
                    f"({generated} generated by a model, {len(p.clips) - generated} previews)"
                },
            },
            *placed,
            *reel_finishing_actions(render),
        ],
        assertion={
            "version": LINEAGE_VERSION,
            "kind": "reel",
            "storyboard": p.storyboard_id,
            "lineage_uri": p.lineage_uri,
            "lineage_manifest": MANIFEST_RULE,
            "clips": [
                {"shot": c.shot_id, "sha256": c.file.sha256, "preview": c.preview, "manifest_uri": c.manifest_uri}
                for c in p.clips
            ],
        },
        ingredients=[
            PlannedIngredient(
                label=f"clip-{i + 1}",
                title=f"{p.storyboard_id}/{c.shot_id}/{c.file.sha256[:12]}.mp4",
                relationship="componentOf",
                format="video/mp4",
                file=c.file,
            )
            for i, c in enumerate(p.clips)
        ],
    )


def reel_expectations(render: ReelResult, *, storyboard_id: str, previews: list[bool]) -> Expectations:
    return Expectations(
        source_type=reel_source_type(previews),
        actions=[
            "c2pa.created",
            *(["c2pa.placed"] * len(previews)),
            *(a["action"] for a in reel_finishing_actions(render)),
        ],
        ingredients=["componentOf"] * len(previews),
        lineage={"kind": "reel", "storyboard": storyboard_id},
    )
