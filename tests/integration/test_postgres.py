"""Dagster and shotline on Postgres, for real: the session's PostgreSQL server on loopback (the `postgres`
fixture of testkit/postgres_server.py, which fails, never skips, when no server can be started); concurrent clip
runs (separate processes, as run workers are) keeping Dagster's runs, events and pool slots, and shotline's
request ledger (SHOTLINE_DATABASE_URL), in it; the production Docker profile loaded against it; and the
compose file's SHOTLINE_DATABASE_URL reaching the database its init script creates.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef
from sqlalchemy.engine import make_url

from testkit.fakes.fal_server import TEST_KEY, FakeFal
from testkit.postgres_server import Postgres
from testkit.storyboard_factory import tiny_storyboard

REPO = Path(__file__).resolve().parents[2]


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


def _ledger(postgres: Postgres, db: str) -> list[dict[str, object]]:
    """The request ledger's rows (one per paid-request attempt), read from the database the runs shared."""
    conn = psycopg2.connect(postgres.url(db))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT clip_key, attempt, submitted_at, finished_at FROM fal_requests")
            names = [column.name for column in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def test_concurrent_clip_runs_on_postgres_storage(postgres: Postgres, fake_fal: FakeFal, tmp_path: Path) -> None:
    home = _dagster_home(tmp_path, {"storage": postgres.storage(postgres.create_database())})
    shotline_db = postgres.create_database()  # the request ledger, clip index and budget, as in deploy/
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
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
        "SHOTLINE_DATABASE_URL": postgres.url(shotline_db),
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

        ledger = _ledger(postgres, shotline_db)
        assert len(ledger) == len(keys)
        assert sorted(e["attempt"] for e in ledger) == [1] * len(keys)  # one request per clip key
        assert len({e["clip_key"] for e in ledger}) == len(keys)
        in_flight = [
            (datetime.fromisoformat(str(e["submitted_at"])), datetime.fromisoformat(str(e["finished_at"])))
            for e in ledger
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


def test_the_fixture_hands_out_fresh_databases_reachable_by_their_url(postgres: Postgres) -> None:
    first, second = postgres.create_database(), postgres.create_database()
    assert first != second
    url = make_url(postgres.url(first))
    assert (url.drivername, url.username, url.password) == ("postgresql", postgres.user, None)
    assert (url.host, url.port, url.database) == ("127.0.0.1", postgres.port, first)
    assert postgres.host == "127.0.0.1"
    conn = psycopg2.connect(postgres.url(first))  # libpq reads the same URL
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), current_user, inet_server_port()")
            assert cur.fetchone() == (first, postgres.user, postgres.port)
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cur.fetchone() == (0,)  # fresh: nothing in it yet
    finally:
        conn.close()
    db = postgres.storage(second)["postgres"]["postgres_db"]  # type: ignore[index]
    assert (db["hostname"], db["port"], db["username"], db["db_name"]) == (
        postgres.host,
        postgres.port,
        postgres.user,
        second,
    )


def test_the_compose_database_url_reaches_the_database_its_init_script_creates(postgres: Postgres) -> None:
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yaml").read_text())
    url = make_url(compose["x-shotline-env"]["SHOTLINE_DATABASE_URL"])
    service = compose["services"][url.host]  # the URL names the compose file's Postgres service
    role = service["environment"]["POSTGRES_USER"]
    (script,) = [
        m.split(":")[0] for m in service["volumes"] if m.split(":")[1].startswith("/docker-entrypoint-initdb.d/")
    ]
    # what the postgres image does on a new volume: POSTGRES_USER is a superuser, who runs the init scripts
    admin = psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user, dbname="postgres")
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE ROLE "{role}" SUPERUSER LOGIN')
            cur.execute(f'DROP DATABASE IF EXISTS "{url.database}"')  # a fresh volume, as the script expects
    finally:
        admin.close()
    init = psycopg2.connect(host=postgres.host, port=postgres.port, user=role, dbname="postgres")
    try:
        init.autocommit = True  # as psql runs a script: CREATE DATABASE cannot run in a transaction
        with init.cursor() as cur:
            cur.execute((REPO / "deploy" / script).read_text())
    finally:
        init.close()
    # the URL, pointed at this server, is all libpq needs (its password would come from PGPASSWORD)
    here = url.set(host=postgres.host, port=postgres.port).render_as_string(hide_password=False)
    conn = psycopg2.connect(here)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), current_user")
            assert cur.fetchone() == (url.database, url.username)
    finally:
        conn.close()
