"""`shotline takes <storyboard>/<shot>`: every take of a shot: take number, generator, fal request id, cost,
when it was generated, its published clip and thumbnail, and where it stands in review. `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import sys

from shotline.cli.targets import shot_target, storyboard_folder
from shotline.config import Settings
from shotline.db import open_database
from shotline.errors import InputError
from shotline.review import ShotTakes, takes_of_shot
from shotline.storyboard import load_storyboard


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("takes", help="every take of a shot, with its cost and review state", description=__doc__)
    p.add_argument("target", help="<storyboard_id>/<shot_id>")
    p.add_argument("--json", action="store_true", help="the takes as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        storyboard_id, shot_id = shot_target(args.target)
        storyboard = load_storyboard(storyboard_folder(storyboard_id, settings))
        listing = takes_of_shot(open_database(settings.database_target), storyboard, shot_id)
    except InputError as exc:
        print(f"shotline takes: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(listing.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print(render(listing))
    return 0


def render(listing: ShotTakes) -> str:
    head = f"{listing.storyboard_id}/{listing.shot_id}: the storyboard asks for take {listing.take}"
    if not listing.takes:
        return f"{head}; no take published yet"
    lines = [head, f"{'take':>4}  {'generator':<9}  {'fal request id':<38}  {'cost':>7}  {'generated at':<25}  review"]
    for t in listing.takes:
        lines.append(
            f"{t.take:>4}  {t.generator:<9}  {t.request_id or '-':<38}  ${t.cost_usd:>6.2f}  {t.generated_at:<25}  "
            f"{t.review.describe()}" + ("  <- latest.json" if t.current else "")
        )
        more = f"  ({t.deliverables} deliverables, the latest shown)" if t.deliverables > 1 else ""
        lines.append(f"{'':>6}clip       {t.video_uri}{more}")
        lines.append(f"{'':>6}thumbnail  {t.thumbnail_uri or '-'}")
    s = listing.spend
    lines.append(
        f"{len(listing.takes)} take(s) published; ${s.cost_usd:.2f} spent on fal for this shot "
        f"({s.takes_paid} take(s) paid for, {s.requests} request(s))"
    )
    return "\n".join(lines)
