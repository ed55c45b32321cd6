"""`shotline validate <storyboard>...`: every check that needs no money, offline, every problem listed.

For each storyboard: the file (syntax, fields, ids, durations, resolutions, trims, templates and images
present and inside the folder, effects registered with valid parameters), each shot's effects held to
its length, each shot's prompt rendered in the sandbox, each local image opened,
validated and normalised in memory, each URL held to the URL policy (SHOTLINE_ALLOW_HTTP,
SHOTLINE_ALLOW_HOSTS) without being fetched or even resolved. Exit code 1 if anything is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shotline.cli.targets import storyboard_folder
from shotline.config import Settings
from shotline.errors import InputError, UrlRefused
from shotline.images import check_image
from shotline.media.effects import shot_problems
from shotline.netguard import UrlPolicy
from shotline.prompts import render_prompt
from shotline.storyboard import STORYBOARD_FILE, Storyboard, inspect_storyboard


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check storyboards offline and list every problem")
    p.add_argument("storyboards", nargs="+", help="storyboard folder, its storyboard.yaml, or an id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        policy = UrlPolicy.from_env()
    except UrlRefused as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return 1
    status = 0
    for target in args.storyboards:
        folder = storyboard_folder(target, settings)
        storyboard, problems = validate_storyboard(folder, policy)
        if problems:
            status = 1
            print(f"{Path(folder).resolve() / STORYBOARD_FILE}: {len(problems)} problem(s)", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            continue
        assert storyboard is not None
        print(f"{storyboard.id}: {len(storyboard.shots)} shots, ok")
    return status


def validate_storyboard(folder: str | Path, policy: UrlPolicy) -> tuple[Storyboard | None, list[InputError]]:
    """The storyboard and every problem the offline checks find in it: the file's first, then each shot's."""
    storyboard, problems = inspect_storyboard(folder)
    if storyboard is None:
        return None, problems
    flagged = {(p.shot, p.field) for p in problems}
    for shot in storyboard.shots:
        if not flagged & {(shot.id, "prompt"), (shot.id, "template")}:
            try:
                render_prompt(storyboard, shot)
            except InputError as exc:
                problems.append(exc)
        for field, message in shot_problems(shot.effects, shot.kept_duration):
            problems.append(InputError(message, storyboard=storyboard.id, shot=shot.id, field=field))
        if (shot.id, "image") not in flagged:
            try:
                check_image(shot.image, storyboard.folder, storyboard_id=storyboard.id, shot_id=shot.id, policy=policy)
            except InputError as exc:
                problems.append(exc)
    return storyboard, problems
