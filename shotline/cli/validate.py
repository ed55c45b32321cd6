"""`shotline validate <storyboard>...`: every check that needs no money, offline, every problem listed."""

from __future__ import annotations

import argparse
import sys

from shotline.cli.targets import storyboard_folder
from shotline.config import Settings
from shotline.errors import InputError, StoryboardError
from shotline.prompts import render_prompt
from shotline.storyboard import load_storyboard


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check storyboards offline and list every problem")
    p.add_argument("storyboards", nargs="+", help="storyboard folder, its storyboard.yaml, or an id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    status = 0
    for target in args.storyboards:
        try:
            sb = load_storyboard(storyboard_folder(target, settings))
            problems: list[InputError] = []
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
