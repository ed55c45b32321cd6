"""Lineage through the real jobs, with fal (the fake server over HTTP) publishing to the local S3 server:

- the sensor runs every shot once; published_clip carries presigned links (fetched with httpx) with their
  expiry, its blocking check verifies every object, and Dagster records which upstream versions it used;
- reel_job adds the contact sheet and the production ledger beside the reel and the clips;
- a clip downloaded from the bucket leads back to its manifest through the `shotline lineage` CLI alone;
- changing one shot reruns exactly that shot: one more paid request, the other shots untouched;
- damaging a published object makes the check fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import yaml
from PIL import Image

from assets.resources import WorkspaceResource
from pipelines.definitions import build_definitions
from pipelines.sensors import build_sensors
from shotline.config import Settings
from shotline.lineage import trace
from shotline.manifest import ClipManifest
from shotline.operating import OperatingSettings
from shotline.production_ledger import ProductionLedger
from shotline.publish import DEFAULT_URL_EXPIRES_S
from shotline.storyboard import load_storyboard
from testkit.fakes.s3_server import S3Env
from testkit.storyboard_factory import tiny_storyboard

CLI = Path(sys.executable).with_name("shotline")
CHECK = dg.AssetCheckKey(dg.AssetKey("published_clip"), "published_objects_intact")


def sense(instance: dg.DagsterInstance, workspace: WorkspaceResource, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace})
    storyboard_sensor, _ = build_sensors(OperatingSettings())
    result = storyboard_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def materializations(instance: dg.DagsterInstance, asset: str, key: str) -> list[Any]:
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=100
    ).records


def latest_md(instance: dg.DagsterInstance, asset: str, key: str) -> dict[str, Any]:
    return dict(materializations(instance, asset, key)[0].asset_materialization.metadata)


def s3_get(s3_env: S3Env, key: str) -> bytes:
    return s3_env.client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read()


def test_lineage_through_the_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fal, s3_env: S3Env) -> None:
    fake_fal.queue_polls, fake_fal.progress_polls = 1, 1
    monkeypatch.setenv("FAL_KEY", fake_fal.key)
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=3)
    env = {
        "FAL_KEY": fake_fal.key,
        "SHOTLINE_FAL_QUEUE_URL": fake_fal.url,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_PUBLISH_URI": s3_env.uri("clips"),
    }
    defs = build_definitions(Settings.from_env(env))
    clip_job = defs.resolve_job_def("clip_job")
    workspace = WorkspaceResource(storyboards=str(root), home=env["SHOTLINE_HOME"])
    keys = ["alpha__s01", "alpha__s02", "alpha__s03"]

    with dg.instance_for_test() as instance:
        first = sense(instance, workspace, None)
        assert sorted(r.partition_key for r in first.run_requests) == keys
        for request in first.run_requests:
            run = clip_job.execute_in_process(partition_key=request.partition_key, instance=instance, tags=request.tags)
            (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == CHECK.name]
            assert check.passed, check.description
        assert len(fake_fal.submits) == 3

        # published_clip: presigned links to clip and thumbnail, with their expiry; Dagster lineage recorded.
        md = latest_md(instance, "published_clip", "alpha__s02")
        prefix = "clips/alpha/s02/"
        sha12 = md["sha256"].value[:12]
        assert isinstance(md["url"], dg.UrlMetadataValue) and isinstance(md["thumbnail_url"], dg.UrlMetadataValue)
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in md["url"].value
        assert f"X-Amz-Expires={DEFAULT_URL_EXPIRES_S}" in md["url"].value
        assert httpx.get(md["url"].value).content == s3_get(s3_env, f"{prefix}{sha12}.mp4")
        assert httpx.get(md["thumbnail_url"].value).content == s3_get(s3_env, f"{prefix}{sha12}.jpg")
        expires = datetime.fromtimestamp(md["url_expires_at"].value, UTC)
        assert abs(expires - (datetime.now(UTC) + timedelta(seconds=DEFAULT_URL_EXPIRES_S))) < timedelta(minutes=5)
        assert "valid until" in md["url_expiry"].value
        secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        assert secret not in str(md) and secret not in s3_get(s3_env, f"{prefix}{sha12}.json").decode()
        record = materializations(instance, "published_clip", "alpha__s02")[0]
        tags = record.asset_materialization.tags
        final_record = materializations(instance, "final_clip", "alpha__s02")[0]
        final = dict(final_record.asset_materialization.metadata)
        # which final_clip materialization it used, and its version (Dagster hashes a partitioned input's)
        assert tags["dagster/input_event_pointer/final_clip"] == str(final_record.storage_id)
        assert (
            tags["dagster/input_data_version/final_clip"] == hashlib.sha256(final["sha256"].value.encode()).hexdigest()
        )
        assert tags["dagster/data_version"] == md["sha256"].value and tags["dagster/code_version"]
        manifest = ClipManifest.model_validate_json(s3_get(s3_env, f"{prefix}{sha12}.json"))
        raw = latest_md(instance, "raw_clip", "alpha__s02")
        assert manifest.generation.request_id == raw["fal_request_id"].value
        assert manifest.generation.timings.queue_s is not None and manifest.generation.timings.total_s
        assert manifest.dagster.upstream_data_versions["final_clip"] == final["sha256"].value
        assert manifest.dagster.code_versions["published_clip"] and manifest.dagster.run_id == record.run_id

        # reel_job: the reel, its contact sheet and the ledger, beside the clips.
        # (the reel itself, and its own checks, are tested elsewhere: the sheet and the ledger do not need it)
        reel_run = defs.resolve_job_def("reel_job").execute_in_process(
            partition_key="alpha", instance=instance, raise_on_error=False
        )
        done = {e.asset_key.to_user_string() for e in reel_run.get_asset_materialization_events()}
        assert {"contact_sheet", "production_ledger"} <= done
        sheet_md = latest_md(instance, "contact_sheet", "alpha")
        assert sheet_md["uri"].value.startswith(s3_env.uri("clips/alpha/reel/contact-sheet-"))
        with Image.open(io.BytesIO(httpx.get(sheet_md["url"].value).content)) as sheet:
            assert sheet.format == "JPEG" and sheet.size == (sheet_md["width"].value, sheet_md["height"].value)
        assert sheet_md["missing"].value == "none"
        ledger = ProductionLedger.model_validate_json(s3_get(s3_env, "clips/alpha/ledger.json"))
        assert [(r.shot_id, r.status) for r in ledger.rows] == [(k.split("__")[1], "published") for k in keys]
        assert [r.request_id for r in ledger.rows] == [
            latest_md(instance, "raw_clip", k)["fal_request_id"].value for k in keys
        ]
        assert ledger.totals.cost_usd == pytest.approx(sum(r.cost_usd or 0 for r in ledger.rows))
        assert ledger.totals.cost_usd > 0
        assert s3_get(s3_env, "clips/alpha/ledger.csv").decode().splitlines()[-1].startswith("alpha,(total),3 shots")

        # A clip found in the bucket and downloaded: the file alone leads back to its lineage, through the CLI.
        bare = tmp_path / "found-in-a-bucket.mp4"
        bare.write_bytes(httpx.get(md["url"].value).content)
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("SHOTLINE_")}
        shown = subprocess.run(
            [str(CLI), "lineage", str(bare), "--json"], cwd=tmp_path, env=cli_env, capture_output=True, text=True
        )
        assert shown.returncode == 0, shown.stderr
        found = json.loads(shown.stdout)
        # the signed manifest is read first (the tags stay as a second way in)
        assert found["found_via"] == "content credentials" and found["file"]["matches_manifest"] is True
        assert found["manifest_uri"] == s3_env.uri(f"{prefix}{sha12}.json")
        assert found["file"]["tags"]["lineage"] == s3_env.uri(f"{prefix}latest.json")
        assert found["manifest"]["generation"]["request_id"] == raw["fal_request_id"].value
        assert found["manifest"]["image"]["origin"] == "images/s02.png"
        assert fake_fal.key not in shown.stdout + shown.stderr

        # Change one shot: exactly that shot reruns, once; the others are untouched.
        before = {k: s3_get(s3_env, f"clips/alpha/{k.split('__')[1]}/latest.json") for k in keys}
        data = yaml.safe_load((folder / "storyboard.yaml").read_text())
        data["shots"][1]["vars"]["subject"] = "something else"
        (folder / "storyboard.yaml").write_text(yaml.safe_dump(data))
        changed = sense(instance, workspace, first.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["alpha__s02"]
        (request,) = changed.run_requests
        assert clip_job.execute_in_process(
            partition_key=request.partition_key, instance=instance, tags=request.tags
        ).success
        assert len(fake_fal.submits) == 4  # one new paid request, for the changed shot only
        assert sense(instance, workspace, changed.cursor).run_requests == []
        for key in ("alpha__s01", "alpha__s03"):
            assert len(materializations(instance, "raw_clip", key)) == 1
            assert len(materializations(instance, "final_clip", key)) == 1
            assert len(materializations(instance, "published_clip", key)) == 1
            assert s3_get(s3_env, f"clips/alpha/{key.split('__')[1]}/latest.json") == before[key]
        latest = json.loads(s3_get(s3_env, f"{prefix}latest.json"))
        assert latest["sha256"][:12] != sha12
        assert s3_get(s3_env, f"{prefix}{sha12}.mp4") == bare.read_bytes()  # the old take is still there
        old = trace(str(bare), "/nowhere")
        assert old.is_latest is False and old.manifest_uri == s3_env.uri(f"{prefix}{sha12}.json")
        new_spec = load_storyboard(folder)
        assert latest_md(instance, "published_clip", "alpha__s02")["spec_sha256"].value == new_spec.shot_spec_hash(
            new_spec.shots[1]
        )

        # Damage a published object: the blocking check fails, naming it.
        video_key = f"clips/alpha/s01/{latest_md(instance, 'published_clip', 'alpha__s01')['sha256'].value[:12]}.mp4"
        body = bytearray(s3_get(s3_env, video_key))
        body[len(body) // 2] ^= 0xFF
        s3_env.client.put_object(Bucket=s3_env.bucket, Key=video_key, Body=bytes(body), ChecksumAlgorithm="SHA256")
        check_only = clip_job.get_subset(asset_selection=set(), asset_check_selection={CHECK})
        run = check_only.execute_in_process(partition_key="alpha__s01", instance=instance, raise_on_error=False)
        assert not run.success
        (evaluation,) = run.get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.description.startswith(f"video: {s3_env.uri(video_key)} has sha256")


def test_the_published_check_is_blocking_and_loaded() -> None:
    from assets.published_clip_checks import published_objects_intact
    from pipelines.definitions import defs

    (spec,) = published_objects_intact.check_specs
    assert spec.key == CHECK and spec.blocking
    assert CHECK in defs.resolve_asset_graph().asset_check_keys
    assert CHECK in defs.resolve_job_def("clip_job").asset_layer.asset_graph.asset_check_keys
