"""`make demo`: register every storyboard's shots, run clip_job for each, run reel_job for each storyboard,
then say where the clips and reels are and what they cost.

It runs the same jobs, against the same Dagster instance (DAGSTER_HOME), that `dagster dev` shows, so the
runs and their lineage are there to browse afterwards. What is already built is reused, so a second run only
checks that nothing changed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg

from assets.partitions import shots, storyboards
from assets.upstream import latest_metadata_or_none
from pipelines.definitions import defs
from shotline import catalog
from shotline.config import Settings
from shotline.errors import ConfigError
from shotline.preflight import preflight

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Outcome:
    key: str
    ok: bool
    seconds: float
    metadata: dict[str, object]
    error: str = ""


def _run(job_name: str, partition_key: str, instance: dg.DagsterInstance, asset: str) -> Outcome:
    start = time.monotonic()
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=partition_key, instance=instance, run_config=QUIET, raise_on_error=False
    )
    seconds = time.monotonic() - start
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        message = (
            failures[0].step_failure_data.error.message.strip()
            if failures and failures[0].step_failure_data.error
            else "run failed"
        )
        return Outcome(partition_key, False, seconds, {}, message)
    return Outcome(partition_key, True, seconds, latest_metadata_or_none(instance, asset, partition_key) or {})


def _where(uri: object) -> str:
    """A local file as a path relative to here when it can be, anything else (s3://...) as it is."""
    text = str(uri)
    if not text.startswith("file://"):
        return text
    path = Path(unquote(urlparse(text).path))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _raw(instance: dg.DagsterInstance, key: str) -> dict[str, object]:
    return latest_metadata_or_none(instance, "raw_clip", key) or {}


def main() -> int:
    settings = Settings.from_env()
    try:
        checked = preflight(settings)  # a setting that cannot work stops here, before any run (or money)
    except ConfigError as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return 2
    found = catalog.scan(settings.storyboards)
    for error in found.errors:
        print(f"skipping a storyboard that does not load:\n{error}", file=sys.stderr)
    if not found.storyboards:
        print(f"no storyboard found under {settings.storyboards}", file=sys.stderr)
        return 1
    instance = dg.DagsterInstance.get()
    print(
        f"generator: {settings.generator}" + ("  (offline preview, $0.00)" if settings.generator == "preview" else "")
    )
    print(f"publishing to: {settings.publish_target}")
    print(next(line for line in checked if line.startswith("content credentials:")))
    failed = 0
    total_cost = 0.0
    for sb in found.storyboards:
        keys = [shot.partition_key for shot in sb.shots]
        instance.add_dynamic_partitions(
            shots.name, [k for k in keys if not instance.has_dynamic_partition(shots.name, k)]
        )
        if not instance.has_dynamic_partition(storyboards.name, sb.id):
            instance.add_dynamic_partitions(storyboards.name, [sb.id])
        print(f"\nstoryboard {sb.id} ({len(keys)} shots)")
        outcomes = []
        for n, key in enumerate(keys, 1):
            print(f"  [{n}/{len(keys)}] {key} ...", end="", flush=True)
            outcome = _run("clip_job", key, instance, "published_clip")
            outcomes.append(outcome)
            if outcome.ok:
                raw = _raw(instance, key)
                cost = float(raw.get("cost_usd", 0.0))  # type: ignore[arg-type]
                total_cost += cost
                reused = " (reused)" if raw.get("cache_hit") else ""
                print(f" done in {outcome.seconds:.1f} s, {raw.get('generator')}{reused}, ${cost:.2f}")
            else:
                failed += 1
                print(f" FAILED in {outcome.seconds:.1f} s\n      {outcome.error}")
        reel = None
        if all(o.ok for o in outcomes):
            print(f"  [reel] {sb.id} ...", end="", flush=True)
            reel = _run("reel_job", sb.id, instance, "storyboard_reel")
            print(f" done in {reel.seconds:.1f} s" if reel.ok else f" FAILED\n      {reel.error}")
            failed += 0 if reel.ok else 1
        print(f"\n  {'shot':<28} {'clip cost':>9}  clip")
        for o in outcomes:
            if o.ok:
                raw = _raw(instance, o.key)
                shot_id = o.key.split("__", 1)[1]
                cost = float(raw.get("original_cost_usd", 0.0))  # type: ignore[arg-type]
                print(f"  {shot_id:<28} ${cost:>8.2f}  {_where(o.metadata.get('uri'))}")
        if reel is not None and reel.ok:
            print(f"  {'reel':<28} {'':>9}  {_where(reel.metadata.get('uri'))}")
            print(f"  manifests beside each clip; reel manifest: {_where(reel.metadata.get('manifest_uri'))}")
    print(f"\nspent on generation this run: ${total_cost:.2f}")
    print("check what a clip says made it: .venv/bin/shotline verify <storyboard_id>/<shot_id>")
    print("browse runs and lineage: make dev  (Dagster UI on http://127.0.0.1:3000)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
