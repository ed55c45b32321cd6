"""A UI backfill at scale: N shots against the fake fal server (fixed generation latency L), fal pool limit C.

    .venv/bin/python bench/backfill.py [--shots 50] [--latency 30] [--pool 8] [--runs 16] [--naive-shots 3]

What it does, all in one run on this machine:
1. the naive baseline: a sequential script (clip_job in-process, one shot after another, as `make demo`) on
   --naive-shots shots; their time minus L is the per-shot post-processing time P;
2. `dagster dev` with the development profile (deploy/dagster.dev.yaml; the run limits raised to --runs so that C
   generations can be in flight, and `dagster instance concurrency set fal C`), the storyboard registered by
   the sensor, then a backfill of every shot launched through GraphQL as the UI does;
3. the same backfill again on the unchanged storyboard: every clip is reused, fal sees no call.

It prints the wall time from launch to the last published clip, the ideal schedule ceil(N/C)*L + P, their
ratio, Dagster's overhead per run (run worker start-up, and time in the run outside the steps and the pool
wait), and the naive script's time for N shots (extrapolated from the shots it ran).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402
from dagster._core.instance.ref import InstanceRef  # noqa: E402

from testkit.dagster_ui import DagsterDev, dagster_cli, dev_instance_yaml, run_failures, wait_for  # noqa: E402
from testkit.fakes.fal_server import TEST_KEY, FakeFal  # noqa: E402
from testkit.storyboard_factory import write_storyboard  # noqa: E402

STORYBOARD = "bench"
STARTING, START, SUCCESS = (
    dg.DagsterEventType.RUN_STARTING,
    dg.DagsterEventType.RUN_START,
    dg.DagsterEventType.RUN_SUCCESS,
)
STEP_START, STEP_SUCCESS = dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS


def make_storyboard(root: Path, n: int) -> list[str]:
    shots = [
        {
            "id": f"s{i:03d}",
            "image": f"images/s{i:03d}.png",
            "prompt": "slow push-in on {{ subject }}",
            "vars": {"subject": f"subject number {i}"},
        }
        for i in range(1, n + 1)
    ]
    data = {"id": STORYBOARD, "defaults": {"duration": 1, "resolution": "480p", "fade": 0.1}, "shots": shots}
    write_storyboard(root, data, images={s["image"]: (640, 360) for s in shots})
    return [f"{STORYBOARD}__{s['id']}" for s in shots]


def shotline_env(tmp: Path, fake: FakeFal, storyboards: Path, name: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SHOTLINE_", "FAL_", "DAGSTER_"))},
        "FAL_KEY": TEST_KEY,
        "SHOTLINE_GENERATOR": "fal",
        "SHOTLINE_FAL_QUEUE_URL": fake.url,
        "SHOTLINE_STORYBOARDS": str(storyboards),
        "SHOTLINE_HOME": str(tmp / name / "work"),
        "SHOTLINE_PUBLISH_URI": str(tmp / name / "published"),
    }


# -- 1. the naive sequential script --------------------------------------------------------------------------


def naive(tmp: Path, fake: FakeFal, storyboards: Path, keys: list[str], latency: float) -> list[float]:
    from pipelines.definitions import build_definitions
    from shotline.config import Settings

    env = shotline_env(tmp, fake, storyboards, "naive")
    os.environ["FAL_KEY"] = env["FAL_KEY"]  # the resource reads it when the run starts, as in production
    job = build_definitions(Settings.from_env(env)).resolve_job_def("clip_job")
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    times = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", keys)
        for key in keys:
            start = time.monotonic()
            result = job.execute_in_process(partition_key=key, instance=instance, run_config=quiet)
            assert result.success, key
            times.append(time.monotonic() - start)
            print(f"  naive {key}: {times[-1]:.1f} s", flush=True)
    return times


# -- 2 and 3. the UI backfill ----------------------------------------------------------------------------------


def published_times(instance: dg.DagsterInstance, keys: list[str], after: float) -> dict[str, float]:
    """Partition -> timestamp of its newest published_clip materialization, for those newer than `after`."""
    out = {}
    for key in keys:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("published_clip"), asset_partitions=[key]), limit=1
        ).records
        if records and records[0].timestamp > after:
            out[key] = records[0].timestamp
    return out


def run_overheads(instance: dg.DagsterInstance, backfill_id: str) -> dict[str, list[float]]:
    """Per run: worker start-up (launched -> RUN_START), time in the run outside steps and pool wait, pool wait."""
    result: dict[str, list[float]] = defaultdict(list)
    for run in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
        stamps: dict[Any, float] = {}
        steps: dict[str, dict[Any, float]] = defaultdict(dict)
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None:
                continue
            kind = event.event_type
            if kind in (STARTING, START, SUCCESS):
                stamps[kind] = record.timestamp
            elif kind in (STEP_START, STEP_SUCCESS) and event.step_key:
                steps[event.step_key][kind] = record.timestamp
        if not {STARTING, START, SUCCESS} <= set(stamps):
            continue
        in_steps = sum(s[STEP_SUCCESS] - s[STEP_START] for s in steps.values() if len(s) == 2)
        pool_wait = 0.0
        if STEP_START in steps.get("raw_clip", {}) and STEP_SUCCESS in steps.get("clip_prompt", {}):
            pool_wait = max(0.0, steps["raw_clip"][STEP_START] - steps["clip_prompt"][STEP_SUCCESS])
        result["startup"].append(stamps[START] - stamps[STARTING])
        result["in_run"].append(stamps[SUCCESS] - stamps[START] - in_steps - pool_wait)
        result["pool_wait"].append(pool_wait)
        result["launched"].append(stamps[STARTING])
    return result


LOAD: list[float] = []  # the machine's 1-minute load average, sampled while backfills run


def backfill(
    service: DagsterDev, instance: dg.DagsterInstance, keys: list[str], title: str, timeout_s: float
) -> tuple[str, float, float]:
    """Launch a backfill of every shot; return (id, launch time, last publish time)."""
    launched = time.time()
    backfill_id = service.launch_backfill(keys, title=title)

    def finished() -> dict[str, float] | None:
        LOAD.append(os.getloadavg()[0])
        times = published_times(instance, keys, launched)
        return times if len(times) == len(keys) else None

    done = wait_for(
        finished,
        timeout_s,
        f"{title}: every shot published",
        interval_s=1.0,
        explain=lambda: run_failures(instance, backfill_id),
    )
    return backfill_id, launched, max(done.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, default=50, help="N, shots in the storyboard")
    parser.add_argument("--latency", type=float, default=30.0, help="L, seconds fal takes per clip")
    parser.add_argument("--pool", type=int, default=8, help="C, the fal pool limit")
    parser.add_argument("--runs", type=int, default=0, help="max concurrent runs (default 2*C)")
    parser.add_argument("--naive-shots", type=int, default=3, help="shots the sequential baseline runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    n, latency, pool = args.shots, args.latency, args.pool
    runs_limit = args.runs or 2 * pool

    tmp = Path(tempfile.mkdtemp(prefix="shotline-bench-backfill-"))
    fake = FakeFal().start()
    fake.generation_s = latency
    service = None
    try:
        storyboards = tmp / "storyboards"
        keys = make_storyboard(storyboards, n)
        print(f"N={n} shots, L={latency:g} s, C={pool}, max concurrent runs {runs_limit}", flush=True)

        naive_keys = keys[: max(1, min(args.naive_shots, n))]
        print(f"1. naive sequential script on {len(naive_keys)} shot(s)", flush=True)
        naive_times = naive(tmp, fake, storyboards, naive_keys, latency)
        post = statistics.median(t - latency for t in naive_times)
        submits_before = len(fake.submits)

        home = tmp / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(
            dev_instance_yaml(
                {
                    "concurrency": {
                        "pools": {"default_limit": 2, "granularity": "op"},
                        "runs": {
                            "max_concurrent_runs": runs_limit,
                            "tag_concurrency_limits": [
                                {
                                    "key": "dagster/backfill",
                                    "value": {"applyLimitPerUniqueValue": True},
                                    "limit": runs_limit,
                                }
                            ],
                        },
                    }
                }
            )
        )
        env = {
            **shotline_env(tmp, fake, storyboards, "ui"),
            "DAGSTER_HOME": str(home),
            "SHOTLINE_AUTORUN": "0",
            "SHOTLINE_SENSOR_INTERVAL_S": "5",
        }
        dagster_cli("instance", "concurrency", "set", "fal", str(pool), env=env)
        print("2. UI backfill (dagster dev, GraphQL launchPartitionBackfill)", flush=True)
        service = DagsterDev(env, tmp / "dagster-dev.log").start()
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            wait_for(lambda: set(keys) <= set(instance.get_dynamic_partitions("shots")), 120, "registration")
            first, launched, last = backfill(service, instance, keys, "bench: all shots", 60 + 20 * n + 4 * latency * n)
            wall = last - launched
            overheads = run_overheads(instance, first)
            first_start = min(overheads["launched"]) - launched if overheads["launched"] else float("nan")
            submits_first = len(fake.submits) - submits_before

            print("3. the same backfill on the unchanged storyboard", flush=True)
            _, relaunched, relast = backfill(service, instance, keys, "bench: rerun", 120 + 20 * n)
            rerun_wall = relast - relaunched
            rerun_calls = len(fake.submits) - submits_before - submits_first
    finally:
        if service is not None:
            service.stop()
        fake.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    waves = math.ceil(n / pool)
    ideal = waves * latency + post
    naive_n = n * statistics.mean(naive_times)
    med = {k: statistics.median(v) for k, v in overheads.items() if k != "launched" and v}
    load = f"{statistics.median(LOAD):.1f} / {max(LOAD):.1f} on {os.cpu_count()} cores" if LOAD else "n/a"
    rows: list[tuple[str, Any]] = [
        ("wall time, launch -> last published clip", f"{wall:.1f} s"),
        (f"ideal: ceil({n}/{pool}) x {latency:g} s + P ({post:.1f} s)", f"{ideal:.1f} s"),
        ("ratio wall / ideal (target <= 1.25)", f"{wall / ideal:.3f}"),
        ("backfill launch -> first run launched (the backfill daemon ticks every 30 s)", f"{first_start:.1f} s"),
        (
            "wall from the first run launched, and its ratio to the ideal",
            f"{wall - first_start:.1f} s, {(wall - first_start) / ideal:.3f}",
        ),
        ("per run: worker start-up (median)", f"{med.get('startup', float('nan')):.2f} s"),
        ("per run: in-run overhead outside steps and pool wait (median)", f"{med.get('in_run', float('nan')):.2f} s"),
        ("per run: waiting for a fal slot (median)", f"{med.get('pool_wait', float('nan')):.1f} s"),
        ("fal submits in the backfill", submits_first),
        (f"naive sequential script, {n} shots (x{n}/{len(naive_times)} of measured)", f"{naive_n:.1f} s"),
        ("speed-up over the naive script", f"{naive_n / wall:.2f}x"),
        ("rerun of the unchanged storyboard: wall", f"{rerun_wall:.1f} s"),
        ("rerun: fal calls", rerun_calls),
        ("machine load during the backfills (1-min load average, median / max)", load),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0 if submits_first == n and rerun_calls == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
