"""`shotline reject <storyboard>/<shot> --note TEXT [--take N] [--by NAME]`: reject a shot's take, saying why.

Like `shotline approve`, bound to the deliverable's sha256. A reel with `reel: {require_approval: true}`
refuses to cut while a shot is rejected or awaiting review.
"""

from __future__ import annotations

import argparse

from shotline.cli.deciding import add_arguments, record
from shotline.config import Settings
from shotline.review import Decision


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reject", help="reject a shot's take, with a note saying why", description=__doc__)
    add_arguments(p, note_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return record(args, settings, Decision.REJECTED)
