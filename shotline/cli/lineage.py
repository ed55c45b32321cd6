"""`shotline lineage <storyboard_id>/<shot_id> | <s3:// or file:// URI> | <path to an mp4>`: where a clip came
from, from its storyboard to the published object, read from its lineage manifest. `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import sys

from shotline.config import Settings
from shotline.credentials.keys import load_trust_anchors
from shotline.errors import ShotlineError
from shotline.lineage import describe, trace


def register(sub: argparse._SubParsersAction) -> None:
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
