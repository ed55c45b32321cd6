"""Dagster on Postgres, for real: a PostgreSQL server started on loopback for this module, concurrent clip runs
(separate processes, as run workers are) storing their runs, events and pool slots in it, and the production
Docker profile loaded against it.

The server is Debian's PostgreSQL (`/usr/lib/postgresql/<version>/bin`) or whatever `initdb` is on PATH. It
refuses to run as root, so as root the server runs as the `postgres` user from a data folder it owns. With no
server installed these tests are skipped, saying so.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from tests.fakes.fal_server import TEST_KEY, FakeFal
from tests.storyboard_factory import tiny_storyboard

REPO = Path(__file__).resolve().parents[1]
SERVER_USER = "postgres"


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def create_database(self) -> str:
        name = f"shotline_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def storage(self, db: str) -> dict[str, object]:
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": "trust",
                    "db_name": db,
                    "scheme": "postgresql+psycopg2",  # as in deploy/: the driver dagster-postgres installs
                }
            }
        }


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("PostgreSQL refuses to run as root and runuser is missing")
    try:
        subprocess.run(["id", SERVER_USER], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        pytest.skip(f"PostgreSQL refuses to run as root and there is no {SERVER_USER!r} user to run it as")
    return [runuser, "-u", SERVER_USER, "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server installed (Debian: apt-get install postgresql); Postgres tests skipped")
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="shotline-pg-"))
    if prefix:
        shutil.chown(root, SERVER_USER)
    data, port = root / "data", _free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", SERVER_USER, "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*ctl, "-l", str(root / "server.log"), "-o", options, "-w", "-t", "60", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield Postgres("127.0.0.1", port, SERVER_USER)
    finally:
        subprocess.run([*ctl, "-m", "immediate", "-w", "-t", "30", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _dagster_home(tmp_path: Path, config: dict[str, object]) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}, **config}))
    return home


def _dagster_cli(*args: str, home: Path) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), *args],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


RUN_ONE_SHOT = """
import sys
import dagster as dg
from pipelines.definitions import defs
result = defs.resolve_job_def("clip_job").execute_in_process(
    partition_key=sys.argv[1], instance=dg.DagsterInstance.get(), raise_on_error=False,
    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
)
sys.exit(0 if result.success else 1)
"""


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_concurrent_clip_runs_on_postgres_storage(postgres: Postgres, fake_fal: FakeFal, tmp_path: Path) -> None:
    home = _dagster_home(tmp_path, {"storage": postgres.storage(postgres.create_database())})
    _dagster_cli("instance", "concurrency", "set", "fal", "2", home=home)  # the pool command of the README
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "pg", n_shots=4, duration=1)
    keys = [f"pg__s{i:02d}" for i in range(1, 5)]
    fake_fal.progress_polls = 8  # long enough in flight that the pool limit is what keeps requests apart
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SHOTLINE_", "FAL_"))},
        "DAGSTER_HOME": str(home),
        "FAL_KEY": TEST_KEY,
        "SHOTLINE_GENERATOR": "fal",
        "SHOTLINE_FAL_QUEUE_URL": fake_fal.url,
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.05",
        "SHOTLINE_FAL_MAX_POLL_INTERVAL_S": "0.1",
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_HOME": str(tmp_path / "work"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
    }
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        instance.add_dynamic_partitions("shots", keys)
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", RUN_ONE_SHOT, key],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for key in keys
        ]
        outputs = [w.communicate(timeout=240)[0] for w in workers]
        assert [w.returncode for w in workers] == [0] * len(keys), "\n".join(outputs)

        assert len(fake_fal.submits) == len(keys)  # one paid request per shot
        runs = instance.get_runs(dg.RunsFilter(job_name="clip_job"))
        assert sorted(r.tags["dagster/partition"] for r in runs) == keys
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        for key in keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("published_clip"), asset_partitions=[key]), limit=1
            ).records
            assert records, f"{key} has no published_clip materialization in Postgres"
            shot = key.split("__")[1]
            assert (tmp_path / "published" / "pg" / shot / "latest.json").is_file()

        ledger = [json.loads(p.read_text()) for p in (tmp_path / "work" / "records" / "fal-requests").glob("*.json")]
        assert len(ledger) == len(keys)
        in_flight = [
            (datetime.fromisoformat(e["submitted_at"]), datetime.fromisoformat(e["finished_at"])) for e in ledger
        ]
        assert _max_overlap(in_flight) <= 2, "more fal requests in flight than the pool allows"
        info = instance.event_log_storage.get_concurrency_info("fal")
        assert info.slot_count == 2 and info.active_slot_count == 0 and not info.pending_steps


def test_production_docker_profile_runs_on_postgres(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = postgres.create_database()
    for name, value in {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": "trust",
        "DAGSTER_PG_DB": db,
    }.items():
        monkeypatch.setenv(name, value)
    profile = yaml.safe_load((REPO / "deploy" / "dagster.docker.yaml").read_text())
    profile["storage"]["postgres"]["postgres_db"]["port"] = postgres.port  # the test server's port, not 5432
    profile["compute_logs"]["config"]["base_dir"] = str(tmp_path / "compute_logs")
    home = _dagster_home(tmp_path, profile)

    _dagster_cli("instance", "migrate", home=home)
    _dagster_cli("instance", "concurrency", "set", "fal", "8", home=home)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert type(instance.run_launcher).__name__ == "DockerRunLauncher"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.event_log_storage.get_concurrency_info("fal").slot_count == 8
        instance.add_dynamic_partitions("shots", ["sb__s01"])
        assert instance.get_dynamic_partitions("shots") == ["sb__s01"]
