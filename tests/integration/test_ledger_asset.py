"""The production ledger: statuses decided from what Dagster knows, the table in the UI, ledger.csv and
ledger.json published beside the clips (on the local S3 server) with the storyboard's totals."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.production_ledger import production_ledger
from pipelines.definitions import build_definitions, build_resources
from shotline.config import Settings
from shotline.production_ledger import (
    COLUMNS,
    EventFacts,
    ProductionLedger,
    RunFacts,
    build_ledger,
    ledger_row,
    to_csv,
)
from shotline.storyboard import load_storyboard
from testkit.fakes.s3_server import S3Env
from testkit.storyboard_factory import tiny_storyboard

SPEC = "c" * 64


def event(at: float, run_id: str = "run-pub", **metadata: Any) -> EventFacts:
    return EventFacts(run_id=run_id, at=at, metadata=metadata)


PUBLISHED = event(100.0, uri="s3://b/sb/s1/abc.mp4", sha256="a" * 64, spec_sha256=SPEC)
RAW = event(90.0, "run-raw", generator="fal", fal_request_id="req-1", original_cost_usd=0.29, cache_hit=False)


@pytest.mark.parametrize(
    ("published", "last_run", "expected", "behind"),
    [
        (PUBLISHED, RunFacts(run_id="run-pub", status="SUCCESS", at=101.0), "published", "run-pub"),
        (event(100.0, spec_sha256="d" * 64), None, "stale", "run-pub"),
        (PUBLISHED, RunFacts(run_id="run-2", status="FAILURE", at=200.0), "failed", "run-2"),
        (None, RunFacts(run_id="run-2", status="FAILURE", at=50.0), "failed", "run-2"),
        (PUBLISHED, RunFacts(run_id="run-1", status="FAILURE", at=50.0), "published", "run-pub"),  # fixed since
        (PUBLISHED, RunFacts(run_id="run-3", status="CANCELED", at=300.0), "failed", "run-3"),
        (PUBLISHED, RunFacts(run_id="run-4", status="STARTED", at=300.0), "running", "run-4"),
        (None, RunFacts(run_id="run-5", status="QUEUED", at=300.0), "running", "run-5"),
        (None, None, "pending", None),
    ],
)
def test_status(published: EventFacts | None, last_run: RunFacts | None, expected: str, behind: str | None) -> None:
    row = ledger_row("sb", "s1", 0, spec_sha256=SPEC, published=published, raw=RAW, last_run=last_run)
    assert (row.status, row.run_id) == (expected, behind)
    assert row.request_id == "req-1" and row.cost_usd == 0.29 and row.generator == "fal"


def test_csv_and_json_with_totals() -> None:
    rows = [
        ledger_row("sb", "s2", 1, spec_sha256=SPEC, published=PUBLISHED, raw=RAW, last_run=None),
        ledger_row("sb", "s1", 0, spec_sha256=SPEC, published=None, raw=None, last_run=None),
        ledger_row(
            "sb",
            "s3",
            2,
            spec_sha256=SPEC,
            published=PUBLISHED,
            raw=event(1.0, cache_hit=True, cost_usd=0.5),
            last_run=None,
        ),
    ]
    ledger = build_ledger("sb", "Storyboard", rows)
    assert [r.shot_id for r in ledger.rows] == ["s1", "s2", "s3"]  # shot order
    t = ledger.totals
    assert (t.shots, t.published, t.pending, t.cache_hits, t.cost_usd) == (3, 2, 1, 1, 0.79)
    assert ledger.rows[1].updated_at == "1970-01-01T00:01:40+00:00"  # the latest of its events
    table = list(csv.DictReader(io.StringIO(to_csv(ledger).decode())))
    assert list(table[0]) == COLUMNS
    assert [r["shot_id"] for r in table] == ["s1", "s2", "s3", "(total)"]
    assert table[1]["cost_usd"] == "0.29" and table[1]["cache_hit"] == "false" and table[0]["cost_usd"] == ""
    assert table[3]["status"] == "3 shots: 2 published, 1 pending" and table[3]["cost_usd"] == "0.79"


def test_the_asset_publishes_the_ledger_beside_the_clips(tmp_path: Path, s3_env: S3Env) -> None:
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=4)
    sb = load_storyboard(folder)
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_PUBLISH_URI": s3_env.uri("clips"),
        "SHOTLINE_GENERATOR": "preview",
    }
    s1, s2, s3, s4 = (shot.partition_key for shot in sb.shots)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", [s1, s2, s3, s4])
        instance.add_dynamic_partitions("storyboards", ["alpha"])
        # s01 and s02 were published earlier (s02 for a spec that has changed since); s04 never ran.
        for key, spec in ((s1, sb.shot_spec_hash(sb.shots[0])), (s2, "old-spec")):
            raw = {"generator": "fal", "fal_request_id": f"req-{key}", "original_cost_usd": 0.29, "cost_usd": 0.29}
            instance.report_runless_asset_event(
                dg.AssetMaterialization("raw_clip", partition=key, metadata=raw | {"cache_hit": False})
            )
            published = {"uri": s3_env.uri(f"clips/{key}.mp4"), "sha256": "e" * 64, "spec_sha256": spec}
            instance.report_runless_asset_event(
                dg.AssetMaterialization("published_clip", partition=key, metadata=published)
            )
        # s03's still is broken: its run fails at sourcing, before any money could be spent.
        (folder / "images" / "s03.png").write_bytes(b"not a png")
        failed = (
            build_definitions(Settings.from_env(env))
            .resolve_job_def("clip_job")
            .execute_in_process(partition_key=s3, instance=instance, raise_on_error=False)
        )
        assert not failed.success

        def materialize() -> dict[str, Any]:
            result = dg.materialize(
                [production_ledger],
                partition_key="alpha",
                instance=instance,
                resources=build_resources(Settings.from_env(env)),
            )
            assert result.success
            (mat,) = result.asset_materializations_for_node("production_ledger")
            return dict(mat.metadata)

        md = materialize()
        obj = s3_env.client.get_object(Bucket=s3_env.bucket, Key="clips/alpha/ledger.json")
        ledger = ProductionLedger.model_validate_json(obj["Body"].read())
        assert [(r.shot_id, r.status) for r in ledger.rows] == [
            ("s01", "published"),
            ("s02", "stale"),
            ("s03", "failed"),
            ("s04", "pending"),
        ]
        assert ledger.rows[0].request_id == f"req-{s1}" and ledger.rows[0].published_uri == s3_env.uri(
            f"clips/{s1}.mp4"
        )
        assert ledger.rows[2].run_id == failed.run_id
        assert ledger.totals.cost_usd == 0.58 and ledger.totals.failed == 1
        assert obj["CacheControl"] == "no-cache" and obj["ContentType"] == "application/json"

        body = s3_env.client.get_object(Bucket=s3_env.bucket, Key="clips/alpha/ledger.csv")["Body"].read().decode()
        table = list(csv.DictReader(io.StringIO(body)))
        assert [r["status"] for r in table] == [
            "published",
            "stale",
            "failed",
            "pending",
            "4 shots: 1 published, 1 stale, 1 failed, 1 pending",
        ]

        assert md["uri"].value == s3_env.uri("clips/alpha/ledger.json")
        assert md["csv_uri"].value == s3_env.uri("clips/alpha/ledger.csv")
        shown = md["ledger"]
        assert isinstance(shown, dg.TableMetadataValue)
        assert [c.name for c in shown.schema.columns] == COLUMNS
        assert [r.data["status"] for r in shown.records] == ["published", "stale", "failed", "pending"]
        assert md["total_cost_usd"].value == 0.58 and md["failed"].value == 1 and md["pending"].value == 1
        assert isinstance(md["csv_url"], dg.UrlMetadataValue) and "X-Amz-Signature=" in md["csv_url"].value
        assert json.loads(json.dumps(ledger.model_dump(mode="json")))["storyboard_id"] == "alpha"

        # Nothing changed: the same ledger, the same data version.
        again = materialize()
        assert again["sha256"].value == md["sha256"].value
