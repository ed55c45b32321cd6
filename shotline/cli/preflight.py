"""`shotline preflight`: check the configuration (database, work store, publish destination, storyboards,
fal key) before anything runs; exit 1 naming the variable that cannot work."""

from __future__ import annotations

import argparse
import sys

from shotline.config import Settings
from shotline.errors import ConfigError
from shotline.preflight import preflight


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("preflight", help="check the configuration before anything runs", description=__doc__)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        checked = preflight(settings)
    except ConfigError as exc:
        print(f"shotline preflight: {exc}", file=sys.stderr)
        return 1
    for line in checked:
        print(f"ok  {line}")
    return 0
