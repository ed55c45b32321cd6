"""Shared-nothing production: run hosts that share only a Postgres server and an S3 bucket.

Each "host" is a separate process with its own SHOTLINE_HOME and working directory; they share Dagster's
instance, the shotline database (request ledger, clip index, budget) on a real PostgreSQL server, and the
work store, storyboards and published clips on a real S3-compatible server, all on loopback. fal is the
fake fal server. Nothing else connects them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from pydantic import SecretStr

from shotline.credentials.keys import development_chain
from shotline.db import open_database
from shotline.fal.ledger import LedgerState, RequestLedger
from testkit.fakes.fal_server import MODEL, FakeFal
from testkit.fakes.s3_server import S3Env
from testkit.postgres_server import Postgres
from testkit.storyboard_factory import tiny_storyboard

REPO = Path(__file__).resolve().parents[2]
CLIP_CHAIN = ("source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip")
WAIT_S = 180.0  # a generous bound for a child to reach a point; never an assertion about speed


def child(partition_key: str, assets: str) -> int:
    """One host's run: clip_job (the given assets) for one shot on the shared Dagster instance."""
    from pipelines.definitions import build_definitions
    from shotline.config import Settings

    instance = dg.DagsterInstance.get()
    for kind, key in (("shots", partition_key), ("storyboards", partition_key.split("__")[0])):
        try:
            if not instance.has_dynamic_partition(kind, key):
                instance.add_dynamic_partitions(kind, [key])
        except Exception:  # another host added it at the same moment
            pass
    result = (
        build_definitions(Settings.from_env())
        .resolve_job_def("clip_job")
        .execute_in_process(
            partition_key=partition_key,
            instance=instance,
            asset_selection=[dg.AssetKey(a) for a in assets.split(",")],
            raise_on_error=False,
        )
    )
    failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    metadata = {}
    for asset in assets.split(","):
        found = result.asset_materializations_for_node(asset) if result.success else []
        if found:
            metadata[asset] = {k: v.value for k, v in found[0].metadata.items()}
    print("RESULT " + json.dumps({"success": result.success, "failures": failures, "metadata": metadata}, default=str))
    return 0 if result.success else 3


def race_worker(database_url: str, home: str, fal_url: str, request_json: str) -> int:
    """One of several workers generating the same clip at once (shared database, own home)."""
    from shotline.fal.generator import build_fal_generator
    from shotline.generators.base import GenerationRequest
    from shotline.store import WorkStore

    request = GenerationRequest.model_validate_json(request_json)
    gen = build_fal_generator(
        store=WorkStore(home),
        db=open_database(database_url),
        key=SecretStr(os.environ["FAL_KEY"]),
        base_url=fal_url,
        rest_url=os.environ["SHOTLINE_FAL_REST_URL"],
        cdn_url=os.environ["SHOTLINE_FAL_CDN_URL"],
        api_url=os.environ["SHOTLINE_FAL_API_URL"],
        model=MODEL,
        budget_usd=None,
        poll_interval=0.02,
        max_poll_interval=0.05,
        generator_options={"lease_s": 5.0},
    )
    result = gen.generate(request, Path(home) / "work", lambda line: None)
    print("RESULT " + json.dumps({"request_id": result.request_id}))
    return 0


@dataclass
class Host:
    name: str
    home: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    out: Path | None = None
    err: Path | None = None

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=WAIT_S)

    def report(self) -> dict[str, Any]:
        assert self.out is not None and self.err is not None
        lines = [ln for ln in self.out.read_text().splitlines() if ln.startswith("RESULT ")]
        assert lines, f"{self.name} reported nothing; stderr:\n{self.err.read_text()[-4000:]}"
        return json.loads(lines[-1].removeprefix("RESULT "))

    def stderr(self) -> str:
        assert self.err is not None
        return self.err.read_text()


class Cluster:
    """Hosts sharing one Postgres database (Dagster's and shotline's) and one S3 bucket, nothing else."""

    def __init__(self, tmp_path: Path, fake: FakeFal, postgres: Postgres, s3: S3Env, n_shots: int) -> None:
        self.tmp_path = tmp_path
        self.fake = fake
        self.s3 = s3
        self.runs: list[Host] = []
        db = postgres.create_database()
        self.database_url = postgres.url(db)
        self.dagster_yaml = yaml.safe_dump({"storage": postgres.storage(db), "telemetry": {"enabled": False}})
        board = tiny_storyboard(tmp_path / "authoring", n_shots=n_shots, duration=2, resolution="480p")
        for path in sorted(p for p in board.rglob("*") if p.is_file()):
            s3.client.upload_file(str(path), s3.bucket, f"storyboards/{board.name}/{path.relative_to(board)}")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SHOTLINE_", "FAL_", "DAGSTER_"))}
        # one signing identity for every host, as production hands each pod the same secret
        signing = development_chain(tmp_path / "signing-secret")
        self.env = {
            **inherited,
            "PYTHONPATH": str(REPO),
            "FAL_KEY": fake.key,
            "SHOTLINE_FAL_QUEUE_URL": fake.url,
            "SHOTLINE_FAL_REST_URL": fake.rest_url,
            "SHOTLINE_FAL_CDN_URL": fake.cdn_url,
            "SHOTLINE_FAL_API_URL": fake.api_url,
            "SHOTLINE_DATABASE_URL": self.database_url,
            "SHOTLINE_STORE_URI": s3.uri("work"),
            "SHOTLINE_STORYBOARDS": s3.uri("storyboards"),
            "SHOTLINE_PUBLISH_URI": s3.uri("published"),
            "SHOTLINE_FAL_POLL_INTERVAL_S": "0.02",
            "SHOTLINE_FAL_MAX_POLL_INTERVAL_S": "0.05",
            "SHOTLINE_FAL_LEASE_S": "3",
            "SHOTLINE_C2PA_CERT": str(signing.chain),
            "SHOTLINE_C2PA_KEY": str(signing.key),
            "SHOTLINE_C2PA_TRUST_ANCHORS": str(signing.root),
        }

    def host(self, name: str) -> Host:
        home, cwd = self.tmp_path / name / "home", self.tmp_path / name / "cwd"
        cwd.mkdir(parents=True, exist_ok=True)
        dagster_home = self.tmp_path / name / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text(self.dagster_yaml)
        return Host(name, home, cwd)

    def start(self, host: Host, partition_key: str, assets: tuple[str, ...] = CLIP_CHAIN, **env: str) -> Host:
        run = Host(host.name, host.home, host.cwd)
        n = len(self.runs)
        run.out, run.err = self.tmp_path / f"run-{n}.out", self.tmp_path / f"run-{n}.err"
        code = (
            "import sys; from tests.integration.test_shared_nothing import child; "
            f"sys.exit(child({partition_key!r}, {','.join(assets)!r}))"
        )
        with run.out.open("wb") as stdout, run.err.open("wb") as stderr:
            run.process = subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=host.cwd,
                env={
                    **self.env,
                    "SHOTLINE_HOME": str(host.home),
                    "DAGSTER_HOME": str(self.tmp_path / host.name / "dagster"),
                    **env,
                },
                stdout=stdout,
                stderr=stderr,
            )
        self.runs.append(run)
        return run

    def ledger(self) -> RequestLedger:
        return RequestLedger(open_database(self.database_url))

    def published_keys(self) -> list[str]:
        pages = self.s3.client.get_paginator("list_objects_v2").paginate(Bucket=self.s3.bucket, Prefix="published/")
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def close(self) -> None:
        for run in self.runs:
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
                run.process.wait(timeout=30)


@pytest.fixture
def cluster_factory(
    tmp_path: Path, fake_fal: FakeFal, postgres: Postgres, s3_env: S3Env
) -> Iterator[Callable[[int], Cluster]]:
    made: list[Cluster] = []

    def make(n_shots: int) -> Cluster:
        cluster = Cluster(tmp_path, fake_fal, postgres, s3_env, n_shots)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


def wait_until(condition: Callable[[], bool], what: str, *runs: Host) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        for run in runs:
            assert run.process is not None
            assert run.process.poll() is None, f"{run.name} ended early ({what}):\n{run.stderr()[-4000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def succeeded(run: Host) -> dict[str, Any]:
    code = run.wait()
    report = run.report()
    assert code == 0, f"{run.name} failed: {report['failures']}\n{run.stderr()[-4000:]}"
    return report


def test_a_run_killed_on_one_host_resumes_its_request_on_another(
    cluster_factory: Callable[[int], Cluster], fake_fal: FakeFal
) -> None:
    cluster = cluster_factory(1)
    fake_fal.queue_polls = 10**6  # fal does not get to it until the test says so
    a, b = cluster.host("host-a"), cluster.host("host-b")
    first = cluster.start(a, "tiny__s01")
    wait_until(lambda: len(fake_fal.jobs) == 1 and next(iter(fake_fal.jobs.values())).polls >= 3, "A to poll", first)
    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)  # a lost node: no cleanup, no cancel
    first.wait()
    [job] = fake_fal.jobs.values()
    job.queue_polls = 0

    report = succeeded(cluster.start(b, "tiny__s01"))

    assert len(fake_fal.submits) == 1 and fake_fal.cancels == []
    assert report["metadata"]["raw_clip"]["fal_request_id"] == job.request_id
    [entry] = cluster.ledger().for_storyboard("tiny")
    assert (entry.state, entry.billed, entry.request_id) == (LedgerState.COMPLETED, True, job.request_id)
    assert fake_fal.billed_request_ids == [job.request_id]
    assert any(k.endswith(".mp4") for k in cluster.published_keys())


def test_a_host_with_an_empty_home_reruns_a_published_storyboard_for_nothing(
    cluster_factory: Callable[[int], Cluster], fake_fal: FakeFal
) -> None:
    cluster = cluster_factory(2)
    a, b = cluster.host("host-a"), cluster.host("host-b")
    for key in ("tiny__s01", "tiny__s02"):
        succeeded(cluster.start(a, key))
    assert len(fake_fal.submits) == 2
    published = cluster.published_keys()

    for key in ("tiny__s01", "tiny__s02"):
        report = succeeded(cluster.start(b, key))  # B's SHOTLINE_HOME has never existed
        raw = report["metadata"]["raw_clip"]
        assert (raw["cache_hit"], raw["cost_usd"]) == (True, 0.0)

    assert len(fake_fal.submits) == 2, "a host with an empty home paid again"
    assert cluster.published_keys() == published  # content-addressed: the same objects, nothing new


def test_two_hosts_running_four_new_shots_under_a_budget_for_two_submit_exactly_two(
    cluster_factory: Callable[[int], Cluster], fake_fal: FakeFal
) -> None:
    cluster = cluster_factory(4)
    a, b = cluster.host("host-a"), cluster.host("host-b")
    budget = {"SHOTLINE_BUDGET_USD": "0.40"}  # $0.17 a clip: room for two
    runs = [
        cluster.start(host, key, **budget)
        for host, key in ((a, "tiny__s01"), (b, "tiny__s02"), (a, "tiny__s03"), (b, "tiny__s04"))
    ]
    codes = [run.wait() for run in runs]

    assert len(fake_fal.submits) == 2
    assert sorted(codes) == [0, 0, 3, 3]
    for run, code in zip(runs, codes, strict=True):
        if code:
            assert any("SHOTLINE_BUDGET_USD=$0.40" in f for f in run.report()["failures"])
    entries = cluster.ledger().for_storyboard("tiny")
    assert sum(e.cost_usd or 0 for e in entries if e.billed) == pytest.approx(0.34)


def test_final_clip_alone_on_a_host_that_did_not_make_the_raw_clip(
    cluster_factory: Callable[[int], Cluster], fake_fal: FakeFal
) -> None:
    cluster = cluster_factory(1)
    a, b = cluster.host("host-a"), cluster.host("host-b")
    succeeded(cluster.start(a, "tiny__s01", ("source_image", "clip_prompt", "raw_clip")))

    report = succeeded(cluster.start(b, "tiny__s01", ("final_clip", "published_clip")))

    assert report["metadata"]["published_clip"]["uri"].startswith(cluster.s3.uri("published"))
    assert len(fake_fal.submits) == 1


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_eight_workers_racing_for_one_clip_submit_once(
    backend: str, tmp_path: Path, fake_fal: FakeFal, postgres: Postgres
) -> None:
    from tests.integration.test_fal_money import noisy_still, request_for

    url = postgres.url(postgres.create_database()) if backend == "postgres" else f"sqlite:///{tmp_path / 'race.db'}"
    open_database(url)  # migrated once up front, as a deploy's first start would
    request = request_for(noisy_still(tmp_path / "still.png"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SHOTLINE_", "FAL_", "DAGSTER_"))},
        "PYTHONPATH": str(REPO),
        "FAL_KEY": fake_fal.key,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
    }
    workers = []
    for n in range(8):
        home = tmp_path / f"worker-{n}"
        code = (
            "import sys; from tests.integration.test_shared_nothing import race_worker; "
            f"sys.exit(race_worker({url!r}, {str(home)!r}, {fake_fal.url!r}, {request.model_dump_json()!r}))"
        )
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    outputs = [w.communicate(timeout=WAIT_S) for w in workers]

    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-3000:]
    ids = {json.loads(out.decode().split("RESULT ", 1)[1])["request_id"] for out, _ in outputs}
    assert len(fake_fal.submits) == 1
    assert ids == {fake_fal.billed_request_ids[0]}
