"""`shotline verify <mp4 | s3:// or file:// URI | storyboard_id/shot_id | storyboard_id/reel>`: read a clip's
content credentials (C2PA) back: who signed it, its digital source type, ingredients and actions, and whether
it holds. A shot or reel is read as published under SHOTLINE_PUBLISH_URI (its latest.json's video).

Exit status: 0 valid (trusted, or valid with an untrusted signer such as the development root; with
--require-trusted only trusted), 1 invalid, 2 no content credentials, 3 the target or the trust anchors cannot
be read. Verification trusts the SDK's list and SHOTLINE_C2PA_TRUST_ANCHORS."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shotline.config import Settings
from shotline.credentials.keys import load_trust_anchors
from shotline.credentials.verification import Verification, verify_bytes, verify_file
from shotline.errors import InputError, PublishError, ShotlineError
from shotline.publish import LATEST, lineage_uri, read_uri
from shotline.storyboard import SLUG

EXIT = {"trusted": 0, "untrusted": 0, "invalid": 1, "absent": 2}
UNREADABLE = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="read a clip's or reel's content credentials (C2PA) back", description=__doc__)
    p.add_argument("target", help="a local mp4, an s3:// or file:// URI, or <storyboard_id>/<shot_id> (or /reel)")
    p.add_argument("--json", action="store_true", help="print what was found as JSON")
    p.add_argument("--require-trusted", action="store_true", help="exit 1 unless the signer is trusted")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        anchors = load_trust_anchors(settings.credentials)
        where, found = verify_target(args.target, settings.publish_target, anchors)
    except ShotlineError as exc:
        print(f"shotline verify: {exc}", file=sys.stderr)
        return UNREADABLE
    if args.json:
        print(json.dumps({"target": args.target, "object": where, **found.model_dump(mode="json")}, indent=2))
    else:
        print(describe(args.target, where, found))
    status = EXIT[found.state]
    if args.require_trusted and found.state == "untrusted":
        status = 1
    return status


def verify_target(target: str, publish_target: str, anchors: str | None) -> tuple[str, Verification]:
    """(what was read, its verification) for a command-line target."""
    path = Path(target)
    if path.is_file():
        return str(path), verify_file(path, trust_anchors=anchors)
    if target.startswith(("s3://", "file://")):
        uri = target if target.endswith(".mp4") else _video_of(target.rstrip("/").removesuffix(LATEST).rstrip("/"))
    else:
        parts = target.strip("/").split("/")
        if len(parts) != 2 or not all(SLUG.match(p) for p in parts):
            raise InputError(
                f"{target!r} is neither an existing file, an s3:// or file:// URI, nor <storyboard_id>/<shot_id>"
            )
        uri = _video_of(lineage_uri(publish_target, *parts).removesuffix("/" + LATEST))
    data = read_uri(uri)
    if data is None:
        raise PublishError(f"nothing at {uri}")
    return uri, verify_bytes(data, trust_anchors=anchors)


def _video_of(folder: str) -> str:
    """The video latest.json in `folder` points at (by its name beside it, so copied trees work)."""
    data = read_uri(f"{folder}/{LATEST}")
    if data is None:
        raise PublishError(f"nothing published at {folder}/: no {LATEST} there")
    latest = json.loads(data)
    name = (latest.get("files") or {}).get("video")
    return f"{folder}/{name}" if name else str(latest["video"])


def describe(target: str, where: str, v: Verification) -> str:
    lines = [f"{target}" + (f"  ({where})" if where != target else ""), f"  state        {v.summary()}"]
    if v.state == "absent":
        return "\n".join(lines)
    if v.signer is not None:
        s = v.signer
        lines.append(f"  signer       {s.common_name}, {s.issuer}  ({s.alg}, serial {s.serial})")
        if s.development:
            lines.append(
                "               a DEVELOPMENT root made by shotline: trusted nowhere unless "
                "SHOTLINE_C2PA_TRUST_ANCHORS names it"
            )
        lines.append(f"  signed at    {s.time or 'no trusted timestamp (checked against the current time)'}")
    lines.append(f"  title        {v.title}")
    lines.append(f"  source type  {(v.digital_source_type or '-').rsplit('/', 1)[-1]}  ({v.digital_source_type})")
    for i, ing in enumerate(v.ingredients):
        own = "no credentials of its own" if not ing.signed else ("its own valid" if ing.valid else "its own INVALID")
        lines.append(f"  {'ingredients' if i == 0 else '':<12} {ing.relationship:<12} {ing.title}  ({own})")
    for i, a in enumerate(v.actions):
        head = "actions" if i == 0 else ""
        lines.append(f"  {head:<12} {a.action:<22} {a.software_agent or '-'}: {a.description or ''}")
    if v.lineage:
        m = v.lineage
        shot = f", shot {m.get('shot')}, take {m.get('take')}" if m.get("kind") == "clip" else ", reel"
        request = f", fal request {m['fal_request_id']}" if m.get("fal_request_id") else ""
        lines.append(f"  shotline     storyboard {m.get('storyboard')}{shot}{request}")
        lines.append(f"               lineage {m.get('lineage_uri')}")
    lines.append(f"  manifests    {v.manifests} (this file's and its signed ingredients')")
    if v.faststart is not None:
        lines.append(f"  fast start   {'yes' if v.faststart else 'NO (moov after mdat)'}")
    for f in v.failures:
        if v.state == "invalid" or f.code != "signingCredential.untrusted":
            lines.append(f"  failure      {f.code}: {f.explanation}")
    return "\n".join(lines)
