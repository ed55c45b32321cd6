"""What `shotline approve` and `shotline reject` share: recording one decision on a shot's take."""

from __future__ import annotations

import argparse
import getpass
import sys

from shotline.cli.targets import shot_target, storyboard_folder
from shotline.config import Settings
from shotline.db import open_database
from shotline.errors import InputError
from shotline.review import Decision, decide
from shotline.storyboard import load_storyboard


def add_arguments(p: argparse.ArgumentParser, *, note_required: bool) -> None:
    p.add_argument("target", help="<storyboard_id>/<shot_id>")
    p.add_argument("--take", help="the take to decide on (default: the take the storyboard asks for now)")
    p.add_argument("--note", required=note_required, help="what the reviewer saw" + (" (required)" * note_required))
    p.add_argument("--by", help="who decides (default: your user name)")


def record(args: argparse.Namespace, settings: Settings, decision: Decision) -> int:
    command = "approve" if decision == Decision.APPROVED else "reject"
    try:
        storyboard_id, shot_id = shot_target(args.target)
        storyboard = load_storyboard(storyboard_folder(storyboard_id, settings))
        recorded = decide(
            open_database(settings.database_target),
            storyboard,
            shot_id,
            decision,
            take=_take(args.take),
            note=args.note,
            by=args.by if args.by is not None else _user(),
            via="cli",
        )
    except InputError as exc:
        print(f"shotline {command}: {exc}", file=sys.stderr)
        return 1
    note = f": {recorded.note}" if recorded.note else ""
    print(
        f"{recorded.decision.value}: {storyboard_id}/{shot_id} take {recorded.take} "
        f"(deliverable {recorded.sha256[:12]}) by {recorded.decided_by}{note}"
    )
    return 0


def _take(text: str | None) -> int | str | None:
    """An integer when it reads as one; anything else is handed on as written, to be refused with its value."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"
