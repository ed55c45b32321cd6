"""`shotline`: the command line beside Dagster. One module per subcommand, each with `register(subparsers)`;
commands that need the Dagster instance (`archive`, `restore`) are registered by the distribution's
`shotline.commands` entry points, from the Dagster side of the code, so the core never imports Dagster."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from shotline.cli import (
    approve,
    estimate,
    lineage,
    preflight,
    reject,
    requests,
    resubmit,
    review,
    takes,
    validate,
    verify,
)
from shotline.config import Settings

PLUGINS = "shotline.commands"
COMMANDS = [validate, estimate, lineage, verify, takes, approve, reject, review, requests, resubmit, preflight]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shotline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    for plugin in entry_points(group=PLUGINS):
        plugin.load()(sub)
    args = parser.parse_args(argv)
    return int(args.func(args, Settings.from_env()))


if __name__ == "__main__":
    sys.exit(main())
