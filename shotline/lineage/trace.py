"""Following lineage back: from a published object, a storyboard/shot, or a bare mp4 (whose content
credentials, or else tags, say where its lineage is published) to its manifest.

By what the target is:

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from shotline.errors import InputError, MediaError, PublishError, ShotlineError
from shotline.hashing import sha256_file
from shotline.manifest import ClipManifest, ReelManifest
from shotline.publish import LATEST, REEL, lineage_uri, read_uri
from shotline.storyboard import SLUG

_SHA12_NAME = re.compile(r"^([0-9a-f]{12})\.(mp4|jpg|json)$")


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
        return bool(self.latest.get("sha256") == self.manifest.get("published", {}).get("video", {}).get("sha256"))


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
    models: dict[str, type[BaseModel]] = {"clip": ClipManifest, "reel": ReelManifest}
    model = models.get(result.kind)
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
