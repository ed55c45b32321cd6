"""`shotline lineage <storyboard_id>/<shot_id> | <s3:// or file:// URI> | <path to an mp4>`: where a clip came
from, from its storyboard to the published object, read from its lineage manifest (shotline.lineage.trace) and
shown for people (`describe`); `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from shotline.config import Settings
from shotline.credentials.keys import load_trust_anchors
from shotline.errors import ShotlineError
from shotline.lineage import Trace, trace
from shotline.publish import REEL


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lineage",
        help="the chain from storyboard to published object of a shot, a published URI or an mp4 file",
        description=__doc__,
    )
    p.add_argument(
        "target",
        help="<storyboard_id>/<shot_id> (or <storyboard_id>/reel) under SHOTLINE_PUBLISH_URI, an s3:// or "
        "file:// URI of a published clip, thumbnail, manifest or latest.json, or a local mp4",
    )
    p.add_argument("--json", action="store_true", help="print the found manifest and how it was found, as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        anchors = load_trust_anchors(settings.credentials)  # a local mp4's content credentials are verified
        found = trace(args.target, settings.publish_target, trust_anchors=anchors)
    except ShotlineError as exc:
        print(f"shotline lineage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found.as_json(), indent=2, ensure_ascii=False))
    else:
        print(describe(found))
    return 0


# --- showing a trace -------------------------------------------------------------------------------------


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
