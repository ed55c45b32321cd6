"""`shotline estimate <storyboard>...`: what generating on fal would cost, before anything runs.

A shot whose clip is already in the cache (same model, image, prompt, duration, resolution) costs nothing.
"""

from __future__ import annotations

import argparse
import sys

from shotline.cli.targets import storyboard_folder
from shotline.config import Settings
from shotline.errors import InputError, StoryboardError
from shotline.generation import cached_clip, clip_key
from shotline.images import source_image
from shotline.pricing import estimate_cost_usd
from shotline.prompts import render_prompt
from shotline.store import WorkStore
from shotline.storyboard import Shot, Storyboard, load_storyboard


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="what generating storyboards on fal would cost (cached clips are free)")
    p.add_argument("storyboards", nargs="+", help="storyboard folder, its storyboard.yaml, or an id")
    p.set_defaults(func=run)


def _is_cached(sb: Storyboard, shot: Shot, store: WorkStore, settings: Settings) -> bool:
    # Only local stills are looked at: the cache is keyed by the normalised image, and fetching a remote one
    # just to price it is not worth a surprise download.
    if "://" in shot.image:
        return False
    try:
        image = source_image(shot.image, sb.folder, store, storyboard_id=sb.id, shot_id=shot.id)
        prompt = render_prompt(sb, shot).text
    except InputError:
        return False
    key = clip_key(generator="fal", model=settings.fal_model, image_sha256=image.sha256, prompt=prompt,
                   duration=shot.duration, resolution=shot.resolution)
    return cached_clip(key, store) is not None


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = WorkStore(settings.home)
    grand = 0.0
    for target in args.storyboards:
        try:
            sb = load_storyboard(storyboard_folder(target, settings))
        except StoryboardError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{sb.id} on {settings.fal_model}:")
        total = 0.0
        for shot in sb.shots:
            cached = _is_cached(sb, shot, store, settings)
            cost = 0.0 if cached else estimate_cost_usd(shot.resolution, shot.duration)
            total += cost
            note = "  (cached)" if cached else ""
            print(f"  {shot.id:<28} {shot.resolution:>5} {shot.duration:>3} s  ${cost:>6.2f}{note}")
        print(f"  {'total':<28} {'':>11}  ${total:>6.2f}")
        grand += total
    if len(args.storyboards) > 1:
        print(f"all storyboards: ${grand:.2f}")
    return 0
