"""Secrets never leave: a storyboard runs through Dagster on fal (the fake server, with a known key) publishing
to S3 (the local server, with known AWS keys), one clip succeeding (its still uploaded to fal storage, its lost
submit found again in fal's platform listing) and one failing on fal's answer; then every log line (Python
logging, stdout and stderr), every Dagster event of every run (metadata included), every file Dagster, the
working store, the database and the publisher wrote, every published object (manifests included), everything
sent to fal's four hosts besides the Authorization header (uploads and listings included) and the repr of
every resource and client are searched for the secrets."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from assets.resources import GeneratorResource, PublisherResource, WorkspaceResource
from pipelines.definitions import build_definitions, build_resources
from shotline.config import Settings
from shotline.db import open_database
from shotline.db.engine import sqlite_url
from shotline.fal.client import FalQueueClient
from shotline.fal.platform import FalPlatform
from shotline.fal.storage import FalStorage
from shotline.generators.factory import build_generator
from shotline.store import WorkStore
from testkit.fakes.fal_server import FakeFal
from testkit.fakes.s3_server import S3Env
from testkit.storyboard_factory import tiny_storyboard

# Invented values, valid in shape only: the test searches everything written for them.
FAL_KEY = "7c1e04d2-shotline-key-id:f3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5"
AWS_ACCESS_KEY_ID = "AKIASHOTLINETEST7Q2X"
AWS_SECRET_ACCESS_KEY = "wJalrXUtnSHOTLINE/K7MDENG/bPxRfiCYTESTKEY"
SECRETS = {
    "fal key": FAL_KEY,
    "fal key secret half": FAL_KEY.split(":", 1)[1],
    "AWS secret key": AWS_SECRET_ACCESS_KEY,
}


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    fake = FakeFal(key=FAL_KEY).start()
    fake.queue_polls, fake.progress_polls = 0, 1
    try:
        yield fake
    finally:
        fake.stop()


def noisy_still(path: Path, size: tuple[int, int] = (640, 360)) -> None:
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(path)


def leaks(where: str, text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [f"{name} in {where}" for name, secret in SECRETS.items() if secret.encode() in data]


def test_no_secret_in_logs_events_metadata_manifests_or_reprs(
    tmp_path: Path,
    fal: FakeFal,
    s3_env: S3Env,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID)  # moto takes any keys
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)
    monkeypatch.setenv("FAL_KEY", FAL_KEY)
    folder = tiny_storyboard(tmp_path / "storyboards", "secrets", n_shots=2)
    for shot in ("s01", "s02"):  # stills too large for a data URI: they go to fal storage
        noisy_still(folder / "images" / f"{shot}.png")
    env = {
        "FAL_KEY": FAL_KEY,
        "SHOTLINE_GENERATOR": "fal",
        "SHOTLINE_FAL_QUEUE_URL": fal.url,
        "SHOTLINE_FAL_REST_URL": fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fal.api_url,
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.01",
        "SHOTLINE_STORYBOARDS": str(folder.parent),
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_PUBLISH_URI": f"s3://{s3_env.bucket}/clips",
    }
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    found: list[str] = []
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        defs = build_definitions(Settings.from_env(env))
        keys = ["secrets__s01", "secrets__s02"]
        instance.add_dynamic_partitions("shots", keys)
        job = defs.resolve_job_def("clip_job")
        fal.fail_next("submit", action="accept_and_drop")  # the submit's answer is lost: found in the listing
        fal.unpolled_finish_s = 0.0  # listed at the first look
        ok = job.execute_in_process(partition_key=keys[0], instance=instance, raise_on_error=False)
        assert ok.success  # the key was sent and accepted: the fake answers 401 to any other
        assert fal.seen("listing") and fal.seen("token") and len(fal.uploads) == 1
        fal.fail_next(
            "result",
            status=200,
            body={"video": {"url": "https://169.254.169.254/latest/meta-data/iam/clip.mp4"}},
        )
        failed = job.execute_in_process(partition_key=keys[1], instance=instance, raise_on_error=False)
        assert not failed.success
        failures = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert failures and "fal video URL refused" in failures[0].step_failure_data.error.message  # type: ignore[union-attr]
        assert len(fal.submits) == 2 and len(fal.uploads) == 2

        for run in (ok, failed):
            for entry in instance.all_logs(run.run_id):
                found += leaks(f"event {entry.dagster_event_type}", dg.serialize_value(entry))
                found += leaks("log message", entry.message)
            record = instance.get_run_by_id(run.run_id)
            assert record is not None
            found += leaks("run config", dg.serialize_value(record))
        metadata = [e.materialization.metadata for e in ok.get_asset_materialization_events()]
        assert metadata and all(metadata)
        found += leaks("materialization metadata", dg.serialize_value(metadata))

    # everything written on disk: Dagster's storage, the working store (media, records), the database (ledger,
    # budget, clip index, fal upload URLs: the SQLite file and its write-ahead log)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "shotline.db" for path in written)
    for path in written:
        found += leaks(str(path.relative_to(tmp_path)), path.read_bytes())
    # everything sent to fal but the Authorization header (which the fake never records): queue, storage
    # (token, uploads), CDN, platform listing
    assert {r.origin for r in fal.requests} == {"queue", "cdn", "rest", "api"}
    for seen in fal.requests:
        where = f"{seen.method} {seen.origin} {seen.route}"
        found += leaks(f"{where} path and query", f"{seen.path} {seen.query}")
        found += leaks(f"{where} headers", repr(seen.headers)) + leaks(f"{where} body", seen.body)
    for upload in fal.uploads:
        found += leaks(f"fal storage URL {upload.access_url}", upload.access_url)
    # everything published: media, thumbnails, manifests, latest.json
    objects = s3_env.client.list_objects_v2(Bucket=s3_env.bucket).get("Contents", [])
    assert any(o["Key"].endswith(".json") and "/secrets/s01/" in o["Key"] for o in objects)
    for obj in objects:
        body = s3_env.client.get_object(Bucket=s3_env.bucket, Key=obj["Key"])["Body"].read()
        found += leaks(f"s3://{s3_env.bucket}/{obj['Key']}", body)

    # the resources, the settings and the clients, as repr and str
    store = WorkStore(tmp_path / "home")
    db = open_database(sqlite_url(store.root))
    key = Settings.from_env(env).fal_key
    assert key is not None
    shown = [
        GeneratorResource(  # as a run resolves it
            kind="fal", fal_key=FAL_KEY, fal_queue_url=fal.url, fal_rest_url=fal.rest_url, fal_cdn_url=fal.cdn_url
        ),
        *build_resources(Settings.from_env(env)).values(),
        WorkspaceResource(storyboards=str(folder.parent), home=str(store.root)),
        PublisherResource(publish_uri=env["SHOTLINE_PUBLISH_URI"]),
        Settings.from_env(env),
        db,
        build_generator(
            kind="fal",
            store=store,
            db=db,
            fal_key=key,
            fal_queue_url=fal.url,
            rest_url=fal.rest_url,
            cdn_url=fal.cdn_url,
            api_url=fal.api_url,
            fal_model=fal.model,
            budget_usd=None,
            deadline_s=60,
        ),
        FalQueueClient(fal.url, key, model=fal.model),
        FalStorage(fal.rest_url, fal.cdn_url, key),
        FalPlatform(fal.api_url, key),
    ]
    for obj in shown:
        found += leaks(f"repr of {type(obj).__name__}", repr(obj)) + leaks(f"str of {type(obj).__name__}", str(obj))

    out, err = capfd.readouterr()
    found += leaks("stdout", out) + leaks("stderr", err) + leaks("Python logging", caplog.text)
    assert "fal video URL refused" in err + caplog.text  # the failure did reach the logs that were searched
    assert found == []
