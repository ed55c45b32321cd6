"""What the shared-nothing setup costs per shot: Postgres + an S3 work store against SQLite + local files.

    .venv/bin/python bench/shared_store.py [--shots 3] [--duration 6] [--resolution 720p] [--repeat 2]

Both setups run the whole clip chain (source_image -> clip_prompt -> raw_clip -> final_clip -> published_clip)
in-process through Dagster, against the fake fal server answering at once, so generation itself costs
nothing and what is measured is everything else a shot does: the clip lease and ledger transactions, the
budget, the clip index, store round trips (uploads, HEADs, records), the fal download and decode check,
post-processing and publishing. The same shots alternate between the two setups so that load on the machine
falls on both alike. It also times the ledger transactions of one paid request alone on each database.

Printed: per-shot wall time of each setup (median), their ratio (shared / local), and the added seconds per
shot. Goal: the shared setup adds less than 5 % to a shot's wall time excluding generation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402
import httpx  # noqa: E402

from pipelines.definitions import build_definitions  # noqa: E402
from shotline.budget import Budget  # noqa: E402
from shotline.config import Settings  # noqa: E402
from shotline.db import open_database  # noqa: E402
from shotline.fal.ledger import RequestLedger  # noqa: E402
from shotline.fal.models import RequestHandle  # noqa: E402
from testkit import postgres_server  # noqa: E402
from testkit.fakes.fal_server import FakeFal  # noqa: E402
from testkit.storyboard_factory import tiny_storyboard  # noqa: E402

CHAIN = ("source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip")


@contextlib.contextmanager
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in its own process, as a real object store is: not competing for this one's GIL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_shot(env: dict[str, str], key: str) -> float:
    """Wall time of the clip chain for one shot, with the environment `env` bound as the pipeline binds it."""
    defs = build_definitions(Settings.from_env(env))
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("shots", [key])
        started = time.perf_counter()
        result = defs.resolve_job_def("clip_job").execute_in_process(
            partition_key=key, instance=instance, asset_selection=[dg.AssetKey(a) for a in CHAIN]
        )
        elapsed = time.perf_counter() - started
    assert result.success
    return elapsed


def ledger_round(database_url: str, n: int) -> float:
    """Seconds for the transactions of one paid request (reserve + submitting, submitted, completed), median."""
    db = open_database(database_url)
    ledger = RequestLedger(db, budget=Budget(db, 1000))
    times = []
    for i in range(n):
        started = time.perf_counter()
        entry = ledger.begin_submit(
            None,
            clip_key=f"bench-{i}-{time.time_ns()}",
            storyboard_id="bench",
            shot_id=f"s{i}",
            model="m",
            parameters={},
            input_sha256="0" * 64,
            image_sha256="0" * 64,
            estimated_cost_usd=0.17,
        )
        handle = RequestHandle(request_id=f"r{i}", status_url="u", response_url="u", cancel_url="u")
        entry = ledger.mark_submitted(entry, handle)
        ledger.mark_completed(
            entry, result={}, cost_usd=0.17, billable_units=None, timings={}, video_sha256="0" * 64, video_size=1
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--resolution", default="720p")
    parser.add_argument("--repeat", type=int, default=2, help="runs of every shot in each setup")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="shotline-bench-shared-"))
    fake = FakeFal().start()
    fake.queue_polls = fake.progress_polls = 0  # generation is excluded: fal answers at once
    pg = contextlib.contextmanager(postgres_server.postgres.__wrapped__)()
    with s3_endpoint() as endpoint, pg as server:
        import boto3

        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            FAL_KEY=fake.key,  # the generator resource reads it through an EnvVar, as in production
        )
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        tiny_storyboard(tmp / "storyboards", n_shots=args.shots, duration=args.duration, resolution=args.resolution)
        common = {
            "FAL_KEY": fake.key,
            "SHOTLINE_FAL_QUEUE_URL": fake.url,
            "SHOTLINE_FAL_REST_URL": fake.rest_url,
            "SHOTLINE_FAL_CDN_URL": fake.cdn_url,
            "SHOTLINE_FAL_API_URL": fake.api_url,
            "SHOTLINE_STORYBOARDS": str(tmp / "storyboards"),
            "SHOTLINE_FAL_POLL_INTERVAL_S": "0.01",
            "SHOTLINE_FAL_MAX_POLL_INTERVAL_S": "0.02",
        }
        local_times: list[float] = []
        shared_times: list[float] = []
        for rep in range(args.repeat):
            pg_url = server.url(server.create_database())
            local = {
                **common,
                "SHOTLINE_HOME": str(tmp / f"local-{rep}"),
                "SHOTLINE_PUBLISH_URI": str(tmp / f"pl-{rep}"),
            }
            shared = {
                **common,
                "SHOTLINE_HOME": str(tmp / f"shared-{rep}"),
                "SHOTLINE_PUBLISH_URI": f"s3://bench/published-shared-{rep}",
                "SHOTLINE_DATABASE_URL": pg_url,
                "SHOTLINE_STORE_URI": f"s3://bench/work-{rep}",
            }
            for n in range(1, args.shots + 1):
                key = f"tiny__s{n:02d}"
                order = [(local, local_times), (shared, shared_times)]
                for env, times in order if n % 2 else reversed(order):
                    times.append(run_shot(env, key))
                print(f"  {key} rep {rep}: local {local_times[-1]:.2f} s, shared {shared_times[-1]:.2f} s", flush=True)
        ledger_local = ledger_round(f"sqlite:///{tmp / 'ledger-bench.db'}", 50)
        ledger_shared = ledger_round(server.url(server.create_database()), 50)
    fake.stop()

    local_s, shared_s = statistics.median(local_times), statistics.median(shared_times)
    print(
        f"\nper shot, excluding generation ({args.shots} shots x {args.repeat}, {args.duration} s {args.resolution}):"
    )
    print(f"  local  (SQLite + SHOTLINE_HOME files, publishing to S3): {local_s:.2f} s (median)")
    print(f"  shared (Postgres + S3 work store, publishing to S3):     {shared_s:.2f} s (median)")
    print(f"  ratio shared/local: {shared_s / local_s:.3f}  (+{shared_s - local_s:.2f} s a shot; goal < 1.05)")
    print(
        "ledger transactions of one paid request: "
        f"SQLite {ledger_local * 1000:.1f} ms, Postgres {ledger_shared * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
