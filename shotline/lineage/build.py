"""Lineage: assemble the manifests from what each stage recorded, and follow them back from a published
object, a storyboard/shot, or a bare mp4 (whose content credentials, or else tags, say where its lineage is
published).

Following back (`trace`), by what the target is:

- `<storyboard_id>/<shot_id>` (or `<storyboard_id>/reel`): that shot's latest.json under the publish
  destination, then the manifest it points at;
- an `s3://` or `file://` URI of a published object: the `<sha12>.json` beside a `<sha12>.mp4|.jpg`, the
  manifest latest.json points at, or the manifest itself;
- a local mp4: the lineage URI in its signed C2PA manifest (shotline's assertion), else its `lineage` tag (both
  the URI of its shot's latest.json, written when it was finished) gives the folder, its own sha256 the
  manifest's name there, and the manifest's recorded sha256 must match the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from shotline import s3
from shotline.errors import InputError, MediaError, PublishError, ShotlineError
from shotline.finishing import CutReelFacts, FinishedClipFacts
from shotline.generation import GeneratedClipFacts
from shotline.hashing import sha256_file
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
from shotline.publish import LATEST, REEL, lineage_uri
from shotline.storyboard import SLUG, STORYBOARD_FILE, Shot, Storyboard

_SHA12_NAME = re.compile(r"^([0-9a-f]{12})\.(mp4|jpg|json)$")


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


# --- following lineage back ------------------------------------------------------------------------------


@dataclass
class Trace:
    """Where a target's lineage was found, and the manifest itself."""

    target: str
    found_via: str  # "storyboard/shot", "published object", "content credentials", "mp4 tags"
    manifest_uri: str
    manifest: dict[str, Any]
    latest_uri: str | None = None
    latest: dict[str, Any] | None = None
    # a local file given as target: path, sha256, tags, credentials, matches_manifest
    file: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", "clip"))

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "found_via": self.found_via,
            "manifest_uri": self.manifest_uri,
            "latest_uri": self.latest_uri,
            "is_latest": self.is_latest,
            "file": self.file,
            "notes": self.notes,
            "manifest": self.manifest,
        }

    @property
    def is_latest(self) -> bool | None:
        """Whether the traced version is the one latest.json points at (None when latest.json was not read)."""
        if self.latest is None:
            return None
        return self.latest.get("sha256") == self.manifest.get("published", {}).get("video", {}).get("sha256")


def read_uri(uri: str, *, client: Any = None) -> bytes | None:
    """The bytes at an `s3://` or `file://` URI, or None when there is nothing there."""
    if uri.startswith("s3://"):
        try:
            bucket, key = s3.parse_s3_uri(uri)
        except s3.S3UriError as e:
            raise InputError(str(e)) from e
        client = client or s3.s3_client()
        if s3.head(client, bucket, key) is None:
            return None
        return s3.get_bytes(client, bucket, key)
    if uri.startswith("file://"):
        path = Path(unquote(urlsplit(uri).path))
        return path.read_bytes() if path.is_file() else None
    raise InputError(f"cannot read {uri!r}: only s3:// and file:// URIs are supported")


def trace(target: str, publish_target: str | Path, *, client: Any = None, trust_anchors: str | None = None) -> Trace:
    """Follow `target` back to its lineage manifest. See the module docstring for what a target may be.
    `trust_anchors`: PEM roots a file's content credentials are verified against (SHOTLINE_C2PA_TRUST_ANCHORS)."""
    if target.startswith(("s3://", "file://")):
        return _trace_uri(target, target, "published object", client)
    path = Path(target)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return _trace_uri(target, path.resolve().as_uri(), "published object", client)
        return _trace_file(target, path, publish_target, client, trust_anchors)
    parts = target.strip("/").split("/")
    if len(parts) == 2 and all(SLUG.match(p) for p in parts):
        sb, shot = parts
        return _trace_uri(target, lineage_uri(publish_target, sb, shot), "storyboard/shot", client)
    raise InputError(f"{target!r} is neither <storyboard_id>/<shot_id>, an s3:// or file:// URI, nor an existing file")


def _split(uri: str) -> tuple[str, str]:
    """(folder URI ending in '/', name) of a URI; a URI ending in '/' is a folder with no name."""
    folder, _, name = uri.rpartition("/")
    return folder + "/", name


def _load_json(uri: str, what: str, client: Any) -> dict[str, Any] | None:
    data = read_uri(uri, client=client)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise PublishError(f"{what} {uri} is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise PublishError(f"{what} {uri} is not a JSON object")
    return doc


def _trace_uri(target: str, uri: str, found_via: str, client: Any) -> Trace:
    folder, name = _split(uri)
    if name in ("", LATEST):
        latest_uri = folder + LATEST
        latest = _load_json(latest_uri, "latest.json", client)
        if latest is None:
            raise PublishError(f"nothing published at {folder}: no {LATEST} there")
        # Names relative to latest.json keep working in a copied or mirrored tree.
        manifest_uri = (
            folder + latest.get("files", {}).get("manifest", "") if latest.get("files") else latest["manifest"]
        )
        return _with_manifest(target, found_via, manifest_uri, latest_uri, latest, client)
    if m := _SHA12_NAME.match(name):
        manifest_uri = folder + f"{m.group(1)}.json"
    elif name.endswith(".json"):
        doc = _load_json(uri, "document", client)
        if doc is None:
            raise PublishError(f"nothing at {uri}")
        if "manifest_sha256" in doc and "files" in doc:  # a latest.json under another name
            return _trace_uri(target, folder + LATEST, found_via, client)
        manifest_uri = uri
    else:
        raise InputError(f"{uri} is not a published clip, thumbnail, manifest or latest.json")
    latest_uri = folder + LATEST
    return _with_manifest(target, found_via, manifest_uri, latest_uri, _load_json(latest_uri, LATEST, client), client)


def _with_manifest(
    target: str,
    found_via: str,
    manifest_uri: str,
    latest_uri: str | None,
    latest: dict[str, Any] | None,
    client: Any,
    file: dict[str, Any] | None = None,
) -> Trace:
    manifest = _load_json(manifest_uri, "manifest", client)
    if manifest is None:
        raise PublishError(f"no lineage manifest at {manifest_uri}")
    result = Trace(target, found_via, manifest_uri, manifest, latest_uri, latest, file)
    model = {"clip": ClipManifest, "reel": ReelManifest}.get(result.kind)
    if model is None:
        result.notes.append(f"unknown manifest kind {result.kind!r}")
    elif manifest.get("schema_version") != model.model_fields["schema_version"].default:
        result.notes.append(
            f"manifest schema_version {manifest.get('schema_version')}, this shotline reads "
            f"{model.model_fields['schema_version'].default}: shown as found"
        )
    else:
        try:
            model.model_validate(manifest)
        except ValidationError as e:  # a manifest that does not fit its schema is an error, not a guess
            raise PublishError(f"{manifest_uri} does not fit the {result.kind} manifest schema: {e}") from e
    return result


def _lineage_keys(path: Path, trust_anchors: str | None) -> tuple[dict[str, str], dict[str, str], str, dict[str, Any]]:
    """The storyboard, shot and lineage location a file names, read from its content credentials (C2PA)
    first and its mp4 tags second; with the file's tags, where the keys were found, and its credentials."""
    from shotline.credentials.verification import verify_file  # the C2PA SDK and ffmpeg only for a file
    from shotline.media.probe import probe

    try:
        tags = probe(path).tags
    except MediaError as e:
        raise InputError(f"{path.name} is not a video shotline can read: {e}") from e
    found = verify_file(path, trust_anchors=trust_anchors)
    signer = f"{found.signer.common_name}, {found.signer.issuer}" if found.signer else None
    credentials = {"state": found.state, "summary": found.summary(), "signer": signer,
                   "digital_source_type": found.digital_source_type}  # fmt: skip
    claim = found.lineage or {}
    if claim.get("storyboard"):
        keys = {"storyboard": str(claim["storyboard"]), "shot": str(claim.get("shot") or REEL),
                "lineage": str(claim.get("lineage_uri") or "")}  # fmt: skip
        return keys, tags, "content credentials", credentials
    return tags, tags, "mp4 tags", credentials


def _trace_file(
    target: str, path: Path, publish_target: str | Path, client: Any, trust_anchors: str | None = None
) -> Trace:
    keys, tags, via, credentials = _lineage_keys(path, trust_anchors)
    storyboard_id, shot_id = keys.get("storyboard"), keys.get("shot") or (REEL if keys.get("storyboard") else None)
    if not storyboard_id:
        raise InputError(
            f"{path.name} carries no shotline lineage tags (storyboard, shot, lineage) and no content "
            "credentials naming its lineage"
        )
    sha = sha256_file(path)
    candidates = [keys["lineage"]] if keys.get("lineage", "").startswith(("s3://", "file://")) else []
    if shot_id and SLUG.match(storyboard_id) and SLUG.match(shot_id):
        here = lineage_uri(publish_target, storyboard_id, shot_id)
        if here not in candidates:
            candidates.append(here)
    file = {"path": str(path), "sha256": sha, "size": path.stat().st_size, "tags": tags, "credentials": credentials}
    tried = []
    for latest_uri in candidates:
        folder, _ = _split(latest_uri)
        manifest_uri = folder + f"{sha[:12]}.json"
        try:
            found = read_uri(manifest_uri, client=client) is not None
        except ShotlineError as e:
            tried.append(f"{manifest_uri} ({e})")
            continue
        if not found:
            tried.append(manifest_uri)
            continue
        latest = _load_json(latest_uri, LATEST, client)
        result = _with_manifest(target, via, manifest_uri, latest_uri, latest, client, file)
        recorded = result.manifest.get("published", {}).get("video", {}).get("sha256")
        if recorded != sha:
            raise PublishError(f"{manifest_uri} describes sha256 {recorded}, not this file's {sha}")
        file["matches_manifest"] = True
        if tried:
            result.notes.append("not found at " + ", ".join(tried))
        return result
    raise PublishError(
        f"{path.name} (storyboard {storyboard_id!r}, shot {shot_id!r}, sha256 {sha[:12]}…) has no published "
        f"manifest: looked for {', '.join(tried) or 'nothing (no lineage tag, no publish destination)'}. "
        "It may have been edited since it was published, or never published."
    )


# --- showing it ----------------------------------------------------------------------------------------


def describe(t: Trace) -> str:
    """The chain from storyboard to published object, for people."""
    m = t.manifest
    lines: list[str] = []
    sb = m.get("storyboard", {})
    head = f"{sb.get('id')}/{m.get('shot', {}).get('id', REEL) if t.kind == 'clip' else REEL}"
    lines.append(f"{head}  ({t.kind} manifest v{m.get('schema_version')}, created {m.get('created_at')})")
    lines.append(f"  manifest    {t.manifest_uri}  (found via {t.found_via})")
    if t.file:
        ok = "matches the manifest" if t.file.get("matches_manifest") else "does NOT match the manifest"
        lines.append(f"  this file   {t.file['path']}  sha256 {t.file['sha256'][:12]}…  {ok}")
        if t.file.get("credentials"):
            c = t.file["credentials"]
            signer = f", signed by {c['signer']}" if c.get("signer") else ""
            lines.append(f"  credentials C2PA {c['summary']}{signer} (`shotline verify` shows them)")
    if t.is_latest is not None:
        latest = "yes" if t.is_latest else f"no: latest is {str((t.latest or {}).get('sha256'))[:12]}…"
        lines.append(f"  latest?     {latest}  ({t.latest_uri})")
    lines.append(
        f"  storyboard  {sb.get('title')} ({sb.get('id')}), {sb.get('file')}  sha256 {_short(sb.get('file_sha256'))}"
    )
    if t.kind == "clip":
        lines += _describe_clip(m)
    else:
        lines += _describe_reel(m)
    lines += _describe_finishing(m.get("post_processing", {}))
    lines += _describe_published(m.get("published", {}))
    d = m.get("dagster", {})
    lines.append(f"  dagster     run {d.get('run_id')}, partition {d.get('partition_key')}")
    lines.append(f"              code versions {_kv(d.get('code_versions', {}))}")
    if d.get("upstream_data_versions"):
        ups = {k: _short(v) for k, v in d["upstream_data_versions"].items()}
        lines.append(f"              upstream data versions {_kv(ups)}")
    lines += [f"  note        {n}" for n in t.notes]
    return "\n".join(lines)


def _describe_clip(m: Mapping[str, Any]) -> list[str]:
    shot, image, prompt, gen = m["shot"], m["image"], m["prompt"], m["generation"]
    spec = shot.get("spec", {})
    settings = [
        f"{spec.get('duration')} s",
        f"{spec.get('resolution')} {spec.get('format')}",
        f"fit {spec.get('fit')}",
        f"fade {spec.get('fade')} s",
        f"loudness {spec.get('loudness_lufs')} LUFS",
    ]
    if spec.get("trim"):
        settings.append(f"trim {spec['trim'][0]}-{spec['trim'][1]} s")
    if spec.get("caption"):
        settings.append(f"caption {spec['caption']!r}")
    t = gen.get("timings", {})
    timing = ", ".join(f"{k.removesuffix('_s')} {t[k]:g} s" for k in ("queue_s", "inference_s", "total_s") if t.get(k))
    what = "PREVIEW (offline, not a real generation)" if gen.get("preview") else gen.get("model")
    lines = [
        f"  shot        #{shot['index'] + 1} {shot['id']}, take {m.get('take', 1)}"
        f"  spec sha256 {_short(shot['spec_sha256'])}",
        f"              {', '.join(settings)}",
        f"  image       {image['origin']} ({image['origin_kind']})  sha256 {_short(image['source_sha256'])}"
        f" -> normalised {image['width']}x{image['height']} sha256 {_short(image['sha256'])}",
        f"  prompt      template {prompt['template'] or '(inline)'} sha256 {_short(prompt['template_sha256'])}",
        f"              vars {_kv(prompt['variables'])}",
        f"              {prompt['text']!r}",
        f"  generation  {gen['generator']} {what}"
        + (f", request {gen['request_id']}" if gen.get("request_id") else ""),
        f"              cost ${gen['cost_usd']:.2f}"
        + (f", {timing}" if timing else "")
        + (", reused from cache" if gen.get("cache_hit") else ""),
        f"              {gen['width']}x{gen['height']} {gen['fps']:g} fps {gen['duration_s']:.2f} s"
        f"  sha256 {_short(gen['sha256'])}",
        f"              parameters {_kv(_scalars(gen.get('parameters', {})))}",
    ]
    return lines


def _describe_reel(m: Mapping[str, Any]) -> list[str]:
    lines = [
        f"  reel        {len(m['clips'])} clips, {m['transition']} {m['transition_seconds']:g} s, "
        f"total generation cost ${m['total_cost_usd']:.2f}"
    ]
    for c in m["clips"]:
        review = (c.get("approval") or {}).get("state", "-")
        lines.append(
            f"              {c['shot_id']:<20} take {c.get('take', 1):<3} sha256 {_short(c['sha256'])}  "
            f"{c['generator']:<8} ${c['cost_usd']:.2f}  {c['duration_s']:.2f} s  {review}  {c.get('manifest_uri')}"
        )
    return lines


def _describe_finishing(p: Mapping[str, Any]) -> list[str]:
    steps = [s.get("step", "?") for s in p.get("steps", []) if s.get("step") not in ("note", "source")]
    enc = p.get("encoder", {})
    video, audio = enc.get("video", {}), enc.get("audio", {})
    encoder = ", ".join(
        x
        for x in (
            f"{video.get('codec')} {video.get('profile')} preset {video.get('preset')} crf {video.get('crf')}"
            if video
            else "",
            f"{audio.get('codec')} {audio.get('bitrate_kbps')} kb/s" if audio else "",
        )
        if x
    )
    return [
        f"  finishing   {' -> '.join(steps)}",
        f"              {encoder}" if encoder else "              (no encoder settings recorded)",
        f"              {p.get('width')}x{p.get('height')} {p.get('duration_s', 0):.2f} s"
        f"  sha256 {_short(p.get('sha256'))}",
    ]


def _describe_published(p: Mapping[str, Any]) -> list[str]:
    lines = []
    for label in ("video", "thumbnail"):
        o = p.get(label)
        if o:
            lines.append(f"              {label:<10} {o['uri']}  sha256 {_short(o['sha256'])}  {o['size']:,} bytes")
    lines.append(f"              {'manifest':<10} {p.get('manifest_uri')}")
    lines[0] = "  published" + lines[0][len("  published") :]
    return lines


def _scalars(d: Mapping[str, Any]) -> dict[str, Any]:
    """The plain values of a mapping, nested ones elided (--json shows them)."""
    return {k: v if not isinstance(v, (dict, list)) else "{…}" if isinstance(v, dict) else "[…]" for k, v in d.items()}


def _short(sha: object) -> str:
    return f"{str(sha)[:12]}…" if sha else "-"


def _kv(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "-"
