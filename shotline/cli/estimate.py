"""`shotline estimate <storyboard>...`: what generating on fal would cost, before anything runs.

A shot costs nothing when its clip is already in the cache (same model, image, prompt, duration, resolution, take)
or when the request ledger holds a paid fal request for exactly that clip (a run resumes it instead of paying
again). Nothing is written to SHOTLINE_HOME: stills are normalised in a throwaway store to find their key.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from decimal import Decimal

from shotline.budget import Budget
from shotline.cli.targets import storyboard_folder
from shotline.clip_index import ClipIndex
from shotline.config import Settings
from shotline.db import Database, open_database
from shotline.errors import InputError, StoryboardError
from shotline.fal.ledger import LedgerState, RequestLedger
from shotline.fal.pricing import estimate_cost
from shotline.generators.cache import cached_clip, shot_clip_key
from shotline.images import ingest_image
from shotline.prompts import render_prompt
from shotline.store import WorkStore, open_store
from shotline.storyboard import Shot, Storyboard, load_storyboard


@dataclass(frozen=True)
class ShotEstimate:
    shot_id: str
    resolution: str
    duration: int
    cost: Decimal
    note: str = ""
    take: int = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("estimate", help="what generating storyboards on fal would cost (cached clips are free)")
    p.add_argument("storyboards", nargs="+", help="storyboard folder, its storyboard.yaml, or an id")
    p.set_defaults(func=run)


def why_free(sb: Storyboard, shot: Shot, store: WorkStore, db: Database, scratch: WorkStore, settings: Settings) -> str:
    """Why this shot would cost nothing now ("cached", "paid: request ..."), or "" if it would be paid for."""
    # Only local stills are looked at: the cache is keyed by the normalised image, and fetching a remote one
    # just to price it is not worth a surprise download.
    if "://" in shot.image:
        return ""
    try:
        image = ingest_image(shot.image, sb.folder, scratch, storyboard_id=sb.id, shot_id=shot.id)
        prompt = render_prompt(sb, shot).text
    except InputError:
        return ""
    key = shot_clip_key(shot, image.sha256, prompt, generator="fal", model=settings.fal_model)
    if cached_clip(key, store, ClipIndex(db)) is not None:
        return "cached"
    ledger = RequestLedger(db)
    for entry in reversed(ledger.attempts(key)):
        if entry.state == LedgerState.COMPLETED or entry.is_open:
            return f"paid: fal request {entry.request_id or '(submit outcome unknown)'} {entry.state.value}"
    return ""


def estimate_storyboard(sb: Storyboard, store: WorkStore, db: Database, settings: Settings) -> list[ShotEstimate]:
    with tempfile.TemporaryDirectory(prefix="shotline-estimate-") as tmp:
        scratch = WorkStore(tmp)
        out = []
        for shot in sb.shots:
            note = why_free(sb, shot, store, db, scratch, settings)
            cost = Decimal("0.00") if note else estimate_cost(shot.resolution, shot.duration)
            out.append(ShotEstimate(shot.id, shot.resolution, shot.duration, cost, note, shot.take))
        return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.store_uri, settings.home, cache_max_bytes=settings.cache_max_bytes)
    db = open_database(settings.database_target)
    grand = Decimal("0.00")
    for target in args.storyboards:
        try:
            sb = load_storyboard(storyboard_folder(target, settings))
        except StoryboardError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{sb.id} on {settings.fal_model}:")
        total = Decimal("0.00")
        for shot in estimate_storyboard(sb, store, db, settings):
            total += shot.cost
            notes = [f"take {shot.take}"] if shot.take > 1 else []
            notes += [shot.note] if shot.note else []
            note = f"  ({', '.join(notes)})" if notes else ""
            print(f"  {shot.shot_id:<28} {shot.resolution:>5} {shot.duration:>3} s  ${shot.cost:>6}{note}")
        print(f"  {'total':<28} {'':>11}  ${total:>6}")
        grand += total
    if len(args.storyboards) > 1:
        print(f"all storyboards: ${grand}")
    if settings.budget_usd is not None:
        budget = Budget(db, settings.budget_usd)
        day = budget.today()
        today = budget.spend(day)
        spent, left = today.total, today.left
        verdict = "fits" if left is not None and grand <= left else "does NOT fit"
        print(
            f"SHOTLINE_BUDGET_USD=${budget.cap}: ${spent} spent or reserved today ({day}, UTC), ${left} left; "
            f"this {verdict}"
        )
    return 0
