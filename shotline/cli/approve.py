"""`shotline approve <storyboard>/<shot> [--take N] [--note TEXT] [--by NAME]`: approve a shot's take.

The approval is bound to exactly the deliverable that take last published (its sha256): a later change to
the shot's deliverable (a new take, caption or edit) is awaiting review again. Decisions live in the shared
database (SHOTLINE_DATABASE_URL), so every host sees them; `shotline review <storyboard>` lists them.
"""

from __future__ import annotations

import argparse

from shotline.cli.deciding import add_arguments, record
from shotline.config import Settings
from shotline.review import Decision


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("approve", help="approve a shot's take (its published deliverable)", description=__doc__)
    add_arguments(p, note_required=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return record(args, settings, Decision.APPROVED)
