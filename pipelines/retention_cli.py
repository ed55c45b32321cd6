"""`shotline archive <storyboard_id>` and `shotline restore <storyboard_id>`: a finished storyboard's partitions
out of the Dagster instance (DAGSTER_HOME) and back (pipelines.retention says what is checked first).

The `shotline` command finds these two through the `shotline.commands` entry points (pyproject.toml): the core
stays free of Dagster, and commands that need the Dagster instance live beside the rest of the Dagster wiring.
This module imports nothing of Dagster until one of them runs, so `shotline validate` and the others start as
fast as before.
"""

from __future__ import annotations

import argparse
import os
import sys

from shotline.config import Settings
from shotline.errors import ShotlineError


def register_archive(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "archive",
        help="remove a finished storyboard's partitions from the Dagster instance (history stays)",
        description="Checks that every shot and the reel of the storyboard are published with their manifests "
        "and its ledger, and that nothing of it is running; then removes its partitions from the Dagster "
        "instance (DAGSTER_HOME). Its published manifests, ledger and event log stay; the sensors skip it "
        "until `shotline restore`.",
    )
    p.add_argument("storyboard", help="the storyboard id")
    p.add_argument("--check", action="store_true", help="only say whether it can be archived")
    p.set_defaults(func=run_archive)


def register_restore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="put an archived storyboard's partitions back into the Dagster instance",
        description="Adds back the partitions `shotline archive` removed; the UI shows their history again.",
    )
    p.add_argument("storyboard", help="the storyboard id")
    p.set_defaults(func=run_restore)


def run_archive(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines import retention

    try:
        instance = _instance()
        workspace, publisher = retention.workspace_from(settings)
        if args.check:
            record = retention.check_archivable(instance, workspace, publisher, args.storyboard)
            print(f"{args.storyboard}: can be archived ({len(record.shots)} shot partitions)")
            return 0
        record = retention.archive(instance, workspace, publisher, args.storyboard)
    except ShotlineError as exc:
        print(f"shotline archive: {exc}", file=sys.stderr)
        return 1
    print(
        f"archived {record.storyboard_id}: {len(record.shots)} shot partitions and the storyboard partition "
        f"removed from the Dagster instance\n  reel manifest: {record.reel_manifest_uri}\n  ledger: "
        f"{record.ledger_uri}\n  put them back with: shotline restore {record.storyboard_id}"
    )
    return 0


def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines import retention

    try:
        record = retention.restore(_instance(), args.storyboard)
    except ShotlineError as exc:
        print(f"shotline restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {record.storyboard_id}: {len(record.shots)} shot partitions and the storyboard partition")
    return 0


def _instance():  # -> dg.DagsterInstance, imported lazily
    import dagster as dg

    from shotline.errors import ConfigError

    if not os.environ.get("DAGSTER_HOME"):
        raise ConfigError(
            "DAGSTER_HOME is not set: it must name the Dagster instance folder (`make dev` and `make demo` use "
            ".dagster/ in the repository: DAGSTER_HOME=$PWD/.dagster)"
        )
    return dg.DagsterInstance.get()
