"""The Dagster instance at production volume: does the storyboard sensor scale with change, not with size, and
what does the UI's partitions tab cost?

    .venv/bin/python bench/partitions.py [--sizes 1000,10000,50000] [--shots-per-storyboard 50] [--repeats 3]

For each size N it builds, in a temporary folder: N/50 storyboards of 50 shots (each shot with its own image)
on disk; a Dagster instance (SQLite, the development profile's storage) with every shot and storyboard
registered as a partition and every shot's clip published for its current spec (a published_clip
materialization carrying about as much metadata as a real one, previews included). Then it times, all in one
run on this machine:

1. one storyboard_sensor tick with nothing changed, and one with a single storyboard changed (one shot's
   prompt variable: that storyboard is read again and the shot gets its run request);
2. for reference, what every tick cost before the sensor kept a fingerprint per storyboard: reading and
   hashing every storyboard (catalog.scan and every shot's spec);
3. the GraphQL query the UI's Partitions tab of published_clip makes (PartitionHealthQuery, taken from the
   UI's bundle), against `dagster-webserver` on loopback: the first (Dagster computes and caches the asset's
   partition status) and the next ones.

It prints each figure per size and how it grows against the smallest size (the baseline, measured in the same
run). Goal: a tick with one change at 50k shots within 2x of the same tick at 1k.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402
import httpx  # noqa: E402
import yaml  # noqa: E402
from dagster._core.instance.ref import InstanceRef  # noqa: E402

from assets.resources import WorkspaceResource  # noqa: E402
from pipelines.sensors import storyboard_sensor  # noqa: E402
from shotline import catalog  # noqa: E402
from shotline.storyboard import load_storyboard  # noqa: E402
from testkit.dagster_ui import LOCATIONS, free_port  # noqa: E402
from testkit.storyboard_factory import write_image  # noqa: E402

# The Partitions tab's query, as the UI (dagster-webserver 1.13.27) sends it.
PARTITION_HEALTH = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
              ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
            }
          }
        }
      }
    }
  }
}
"""
# what a real published_clip materialization carries besides its keys: thumbnail, preview, card, URIs
METADATA_PADDING = "x" * 9000


def build(base: Path, n_shots: int, per_storyboard: int) -> tuple[Path, Path, list[str]]:
    """Storyboards on disk and an instance holding them, registered and published; returns (root, home, ids)."""
    root, home = base / "storyboards", base / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    image = write_image(base / "image.png", (64, 36))
    ids = [f"sb{i:05d}" for i in range(n_shots // per_storyboard)]
    for storyboard_id in ids:
        folder = root / storyboard_id
        (folder / "images").mkdir(parents=True)
        shots = []
        for j in range(per_storyboard):
            shutil.copyfile(image, folder / "images" / f"s{j:03d}.png")
            shots.append(
                {"id": f"s{j:03d}", "image": f"images/s{j:03d}.png", "prompt": "push-in on {{ s }}", "vars": {"s": j}}
            )
        data = {"id": storyboard_id, "defaults": {"duration": 2, "resolution": "480p"}, "shots": shots}
        (folder / "storyboard.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    settle(root)
    with instance_at(home) as instance:
        instance.add_dynamic_partitions("storyboards", ids)
        for storyboard_id in ids:
            storyboard = load_storyboard(root / storyboard_id)
            instance.add_dynamic_partitions("shots", [s.partition_key for s in storyboard.shots])
            for shot in storyboard.shots:
                spec = storyboard.shot_spec_hash(shot)
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        "published_clip",
                        partition=shot.partition_key,
                        metadata={"sha256": spec, "spec_sha256": spec, "padding": METADATA_PADDING},
                    )
                )
    return root, home, ids


def settle(path: Path, ago_s: float = 60.0) -> None:
    """Date the files as written a while ago (the sensor does not trust files written in the last seconds)."""
    stamp = time.time() - ago_s
    for p in [path, *path.rglob("*")]:
        os.utime(p, (stamp, stamp))


@contextlib.contextmanager
def instance_at(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def tick(
    instance: dg.DagsterInstance, workspace: WorkspaceResource, cursor: str | None
) -> tuple[float, dg.SensorResult]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace})
    start = time.perf_counter()
    result = storyboard_sensor(context)
    return time.perf_counter() - start, result


def change(folder: Path, n: int) -> None:
    data = yaml.safe_load((folder / "storyboard.yaml").read_text())
    data["shots"][0]["vars"]["s"] = f"changed {n}"
    (folder / "storyboard.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    settle(folder, ago_s=30.0 - n)  # a new time at every change


def sensor_figures(root: Path, home: Path, ids: list[str], repeats: int) -> dict[str, float]:
    workspace = WorkspaceResource(storyboards=str(root), home=str(home.parent / "work"))
    with instance_at(home) as instance:
        # a first tick reads for at most READ_BUDGET_S: the catalogue is read over as many ticks as it takes
        cold, cursor, generation = 0.0, None, None
        while True:
            seconds, result = tick(instance, workspace, cursor)
            assert result.run_requests == [], "every shot is published for its spec: nothing should run"
            cold += seconds
            cursor, done = result.cursor, generation == json.loads(result.cursor)["generation"]
            generation = json.loads(cursor)["generation"]
            if done:
                break
        idle = []
        for _ in range(repeats):
            seconds, result = tick(instance, workspace, cursor)
            assert result.run_requests == [] and result.dynamic_partitions_requests == []
            idle.append(seconds)
            cursor = result.cursor
        one = []
        for n in range(repeats):
            change(root / ids[(n * 7919) % len(ids)], n)
            seconds, result = tick(instance, workspace, cursor)
            assert len(result.run_requests) == 1, result.run_requests
            one.append(seconds)
            cursor = result.cursor
    start = time.perf_counter()
    found = catalog.scan(root)
    found.shot_specs()
    full = time.perf_counter() - start
    return {"cold": cold, "idle": min(idle), "one_change": min(one), "full_read": full}


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if predicate():
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} after {timeout_s:g} s")


def graphql_figures(root: Path, home: Path, repeats: int) -> dict[str, float]:
    """Times of the Partitions tab's query against dagster-webserver over this instance (no daemon)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SHOTLINE_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_HOME": str(home.parent / "work"),
    }
    command = [str(Path(sys.executable).with_name("dagster-webserver")), "-w", "workspace.yaml", "-h", "127.0.0.1"]
    log = (home.parent / "webserver.log").open("wb")
    proc = subprocess.Popen(
        [*command, "-p", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)

    def query(text: str, variables: dict | None = None) -> dict:
        response = client.post("/graphql", json={"query": text, "variables": variables or {}})
        response.raise_for_status()
        return response.json()

    try:
        wait_for(
            lambda: all(
                e["loadStatus"] == "LOADED" for e in query(LOCATIONS)["data"]["workspaceOrError"]["locationEntries"]
            ),
            180,
            "the webserver did not load the code location",
        )
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            body = query(PARTITION_HEALTH, {"assetKey": {"path": ["published_clip"]}})
            times.append(time.perf_counter() - start)
            node = body["data"]["assetNodeOrError"]
            assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) > 0, body
        return {"graphql_first": times[0], "graphql": min(times[1:])}
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000", help="numbers of shot partitions, smallest first")
    parser.add_argument("--shots-per-storyboard", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: dict[int, dict[str, float]] = {}
    for n in sizes:
        base = Path(tempfile.mkdtemp(prefix=f"shotline-bench-partitions-{n}-"))
        try:
            start = time.perf_counter()
            root, home, ids = build(base, n, args.shots_per_storyboard)
            print(f"{n} shots, {len(ids)} storyboards: built in {time.perf_counter() - start:.0f} s", flush=True)
            rows[n] = sensor_figures(root, home, ids, args.repeats) | graphql_figures(root, home, args.repeats)
            print("  " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in rows[n].items()), flush=True)
        finally:
            if args.keep:
                print(f"  kept {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)
    base_n = sizes[0]
    labels = {
        "one_change": "sensor tick, one storyboard changed",
        "idle": "sensor tick, nothing changed",
        "cold": "first ticks, until every storyboard is read",
        "full_read": "reading every storyboard (what every tick cost before)",
        "graphql_first": "Partitions tab query, first (status computed)",
        "graphql": "Partitions tab query, next",
    }
    print(f"\n{'':<56}" + "".join(f"{n:>16,}" for n in sizes))
    for key, label in labels.items():
        cells = "".join(f"{rows[n][key] * 1000:>9.0f} ms {rows[n][key] / rows[base_n][key]:>4.1f}x" for n in sizes)
        print(f"{label:<56}{cells}")
    worst = rows[sizes[-1]]["one_change"] / rows[base_n]["one_change"]
    verdict = "within" if worst <= 2 else "NOT within"
    print(f"\none change at {sizes[-1]:,} shots: {worst:.2f}x the same tick at {base_n:,} ({verdict} the 2x goal)")
    print(f"median load average during the run: {statistics.median(os.getloadavg()):.1f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
