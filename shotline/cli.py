"""`shotline`: the command line beside Dagster. `validate` checks storyboards offline; `estimate` prices them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shotline.config import Settings
from shotline.errors import InputError, StoryboardError
from shotline.generation import cached_clip, clip_key
from shotline.hashing import sha256_file
from shotline.pricing import estimate_cost_usd
from shotline.prompts import render_prompt
from shotline.store import WorkStore
from shotline.storyboard import Storyboard, load_storyboard


def _resolve(target: str, settings: Settings) -> Path:
    path = Path(target)
    if (path / "storyboard.yaml").is_file():
        return path
    if path.name == "storyboard.yaml":
        return path.parent
    return Path(settings.storyboards) / target


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    status = 0
    for target in args.storyboards:
        try:
            sb = load_storyboard(_resolve(target, settings))
            problems = []
            for shot in sb.shots:
                try:
                    render_prompt(sb, shot)
                except InputError as exc:
                    problems.append(exc)
            if problems:
                raise StoryboardError(str(sb.path), problems)
        except StoryboardError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(f"{sb.id}: {len(sb.shots)} shots, ok")
    return status


def _estimate(sb: Storyboard, store: WorkStore, settings: Settings) -> tuple[float, list[str]]:
    total = 0.0
    lines = []
    for shot in sb.shots:
        cost = estimate_cost_usd(shot.resolution, shot.duration)
        note = ""
        image = sb.folder / shot.image
        if "://" not in shot.image and image.is_file():
            # Only the normalised image's hash keys the cache; an exact match needs the source_image step.
            # A clip already generated for this shot's current inputs is found through its spec record.
            record = store.get_record("estimates", sha256_file(image))
            if record and cached_clip(
                clip_key(
                    generator="fal",
                    model=settings.fal_model,
                    image_sha256=record["normalised_sha256"],
                    prompt=render_prompt(sb, shot).text,
                    duration=shot.duration,
                    resolution=shot.resolution,
                ),
                store,
            ):
                cost, note = 0.0, "  (cached)"
        total += cost
        lines.append(f"  {shot.id:<28} {shot.resolution:>5} {shot.duration:>3} s  ${cost:>6.2f}{note}")
    return total, lines


def cmd_estimate(args: argparse.Namespace, settings: Settings) -> int:
    store = WorkStore(settings.home)
    grand = 0.0
    for target in args.storyboards:
        try:
            sb = load_storyboard(_resolve(target, settings))
        except StoryboardError as exc:
            print(exc, file=sys.stderr)
            return 1
        total, lines = _estimate(sb, store, settings)
        print(f"{sb.id} on {settings.fal_model}:")
        print("\n".join(lines))
        print(f"  {'total':<28} {'':>11}  ${total:>6.2f}")
        grand += total
    if len(args.storyboards) > 1:
        print(f"all storyboards: ${grand:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shotline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check storyboards offline and list every problem")
    p.add_argument("storyboards", nargs="+", help="storyboard folder, its storyboard.yaml, or an id")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("estimate", help="what generating a storyboard on fal would cost (cached clips are free)")
    p.add_argument("storyboards", nargs="+")
    p.set_defaults(func=cmd_estimate)
    args = parser.parse_args(argv)
    return int(args.func(args, Settings.from_env()))


if __name__ == "__main__":
    sys.exit(main())
