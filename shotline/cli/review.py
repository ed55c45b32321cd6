"""`shotline review <storyboard>`: each shot's published take, where it stands in review (awaiting review,
approved, rejected with the note), and what all its takes cost so far. `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import sys

from shotline.cli.targets import storyboard_folder
from shotline.config import Settings
from shotline.db import open_database
from shotline.errors import InputError
from shotline.review import ReviewState, ShotReview, review_storyboard
from shotline.storyboard import Storyboard, load_storyboard


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("review", help="every shot of a storyboard in review, with its cost", description=__doc__)
    p.add_argument("storyboard", help="storyboard folder, its storyboard.yaml, or an id")
    p.add_argument("--json", action="store_true", help="the review as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        storyboard = load_storyboard(storyboard_folder(args.storyboard, settings))
        shots = review_storyboard(open_database(settings.database_target), storyboard)
    except InputError as exc:
        print(f"shotline review: {exc}", file=sys.stderr)
        return 1
    if args.json:
        doc = {
            "storyboard_id": storyboard.id,
            "require_approval": storyboard.reel.require_approval,
            "shots": [s.model_dump(mode="json") for s in shots],
            "counts": counts(shots),
            "cost_usd": round(sum(s.spend.cost_usd for s in shots), 2),
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(render(storyboard, shots))
    return 0


def counts(shots: list[ShotReview]) -> dict[str, int]:
    return {state.value: sum(s.verdict.state == state for s in shots) for state in ReviewState}


def render(storyboard: Storyboard, shots: list[ShotReview]) -> str:
    required = "requires approval" if storyboard.reel.require_approval else "does not require approval"
    lines = [
        f"{storyboard.id}: {len(shots)} shots; its reel {required}",
        f"{'shot':<24} {'take':>4}  {'published':<22} {'cost, all takes':<22} review",
    ]
    for s in shots:
        published = f"take {s.published.take} ({s.published.sha256[:12]})" if s.published else "-"
        cost = f"${s.spend.cost_usd:.2f} ({s.spend.takes_paid} paid)"
        review = s.verdict.describe()
        if s.stale:
            review += f"  [the storyboard now asks for something else (take {s.take}): run the shot]"
        lines.append(f"{s.shot_id:<24} {s.take:>4}  {published:<22} {cost:<22} {review}")
    n = counts(shots)
    total = sum(s.spend.cost_usd for s in shots)
    lines.append(", ".join(f"{v} {k}" for k, v in n.items()) + f"; ${total:.2f} spent on fal across all takes")
    return "\n".join(lines)
