"""Review, end to end through Dagster on fal (the fake server over HTTP): approve and reject from the command
line and from review_job, a caption change that needs a new approval, the `approved` check on published_clip
(from the asset run, review_job and review_sensor), a reel with `require_approval` failing before it encodes
then succeeding, the production ledger's totals across takes, the reel refusing a final clip that is not the
published one, the contact sheet with takes side by side, and bad input refused with nothing written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from PIL import Image

from pipelines.review import build_review_sensor
from shotline.config import Settings
from shotline.db import open_database
from shotline.db.tables import review_decisions
from shotline.manifest import ReelManifest
from shotline.operating import OperatingSettings
from testkit.fakes.fal_server import FakeFal
from testkit.takes_kit import Studio, open_studio, two_shots

review_sensor = build_review_sensor(OperatingSettings())
CLIP_COST = 0.17  # 2 s at 480p on fal
APPROVED_CHECK = dg.AssetCheckKey(dg.AssetKey("published_clip"), "approved")


@pytest.fixture
def studio(tmp_path: Path, fake_fal: FakeFal, monkeypatch: pytest.MonkeyPatch):
    with open_studio(tmp_path, fake_fal, monkeypatch) as s:
        yield s


def review(studio: Studio) -> dict[str, dict]:
    doc = studio.cli_json("review", studio.storyboard_id)
    return {s["shot_id"]: s for s in doc["shots"]}


def decisions(studio: Studio) -> list[dict]:
    db = open_database(Settings.from_env(studio.env).database_target)
    with db.begin() as conn:
        return [dict(r) for r in conn.execute(sa.select(review_decisions).order_by(review_decisions.c.id)).mappings()]


def check_state(studio: Studio, shot_id: str) -> tuple[str, bool]:
    """The latest `approved` evaluation of the shot's partition: (status, aimed at its latest materialization)."""
    [info] = studio.instance.event_log_storage.get_asset_check_partition_info(
        [APPROVED_CHECK], partition_keys=[f"{studio.storyboard_id}__{shot_id}"]
    )
    return info.latest_execution_status.value, info.is_current


def test_approve_reject_and_a_caption_change_that_needs_a_new_approval(studio: Studio) -> None:
    sb = studio.write(two_shots()).id
    for shot in ("s01", "s02"):
        studio.run_shot(shot)
    shots = review(studio)
    assert {s: (v["verdict"]["state"], v["take"], v["published"]["take"]) for s, v in shots.items()} == {
        "s01": ("awaiting review", 1, 1),
        "s02": ("awaiting review", 1, 1),
    }
    assert shots["s01"]["spend"]["cost_usd"] == pytest.approx(CLIP_COST)
    assert check_state(studio, "s01") == ("FAILED", True)  # the asset run's own evaluation: a warning
    latest_s01 = studio.latest("s01")["sha256"]

    code, out, _ = studio.cli("approve", f"{sb}/s01", "--note", "lovely light", "--by", "ana")
    assert code == 0 and f"approved: {sb}/s01 take 1 (deliverable {latest_s01[:12]}) by ana" in out
    code, _, err = studio.cli("reject", f"{sb}/s02")
    assert code == 2 and "--note" in err  # a rejection says why
    code, out, _ = studio.cli("reject", f"{sb}/s02", "--note", "too dark", "--by", "ben")
    assert code == 0 and "rejected" in out
    shots = review(studio)
    assert shots["s01"]["verdict"]["state"] == "approved"
    assert shots["s01"]["verdict"]["decision"]["decided_by"] == "ana"
    assert shots["s01"]["verdict"]["decision"]["sha256"] == latest_s01
    assert (shots["s02"]["verdict"]["state"], shots["s02"]["verdict"]["decision"]["note"]) == ("rejected", "too dark")
    code, out, _ = studio.cli("review", sb)
    assert "approved by ana: lovely light" in out and "rejected by ben: too dark" in out

    # Decisions made on the command line reach the check through review_sensor.
    result = review_sensor(dg.build_sensor_context(instance=studio.instance, cursor=None), workspace=workspace(studio))
    assert isinstance(result, dg.SensorResult)
    reported = {e.partition: e.passed for e in result.asset_events}
    assert reported == {f"{sb}__s01": True, f"{sb}__s02": False}
    for event in result.asset_events:  # what the daemon does with them
        studio.instance.report_runless_asset_event(event)
    assert check_state(studio, "s01") == ("SUCCEEDED", True) and check_state(studio, "s02") == ("FAILED", True)
    again = review_sensor(
        dg.build_sensor_context(instance=studio.instance, cursor=result.cursor), workspace=workspace(studio)
    )
    assert isinstance(again, dg.SkipReason)

    # A new caption is a new deliverable of the same take (no new fal request): awaiting review again.
    submits = len(studio.fake.submits)
    studio.set_shot("s01", caption="Boats at dawn")
    studio.run_shot("s01")
    assert len(studio.fake.submits) == submits
    recaptioned = studio.latest("s01")["sha256"]
    assert recaptioned != latest_s01
    assert review(studio)["s01"]["verdict"]["state"] == "awaiting review"
    assert check_state(studio, "s01") == ("FAILED", True)

    # Approved from the Launchpad: review_job, typed config, the same core function; the check follows at once.
    done = studio.review_job(shot=f"{sb}/s01", decision="approve", note="caption reads well", by="cleo")
    assert done.success
    assert check_state(studio, "s01") == ("SUCCEEDED", True)
    shots = review(studio)
    assert shots["s01"]["verdict"]["state"] == "approved"
    assert shots["s01"]["verdict"]["decision"]["sha256"] == recaptioned
    rows = decisions(studio)
    assert [(r["shot_id"], r["decision"], r["decided_by"], r["via"]) for r in rows] == [
        ("s01", "approved", "ana", "cli"),
        ("s02", "rejected", "ben", "cli"),
        ("s01", "approved", "cleo", "dagster"),
    ]
    assert rows[0]["sha256"] == latest_s01 and rows[2]["sha256"] == recaptioned
    # the sensor leaves review_job's own decision alone (the job reported it already)
    followed = review_sensor(
        dg.build_sensor_context(instance=studio.instance, cursor=result.cursor), workspace=workspace(studio)
    )
    assert isinstance(followed, dg.SensorResult) and followed.asset_events == []
    assert followed.cursor == str(rows[2]["id"])


def workspace(studio: Studio):
    return studio.defs.resources["workspace"]


def test_a_reel_that_requires_approval_fails_before_encoding_then_cuts(studio: Studio) -> None:
    sb = studio.write(two_shots(reel={"require_approval": True})).id
    for shot in ("s01", "s02"):
        studio.run_shot(shot)
    reels = Path(studio.env["SHOTLINE_HOME"]) / "records" / "reels"

    def reel_failure() -> str:
        result = studio.run_reel()
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        # nothing cut, nothing published (the contact sheet beside it is drawn all the same)
        assert not list((studio.published / sb / "reel").glob("*.mp4"))
        assert not reels.exists() or not list(reels.iterdir())
        return failure.step_failure_data.user_failure_data.description

    message = reel_failure()
    assert "cuts only approved clips (reel.require_approval)" in message
    assert "awaiting review: s01 (take 1" in message and "s02 (take 1" in message

    studio.cli("approve", f"{sb}/s01", "--by", "ana")
    studio.cli("reject", f"{sb}/s02", "--note", "gulls out of focus", "--by", "ben")
    message = reel_failure()
    assert "rejected: s02 (take 1" in message and "by ben: gulls out of focus" in message and "s01" not in message

    # Another take of s02, approved: the reel cuts, and its manifest names each clip's take and approval.
    studio.set_shot("s02", take=2)
    studio.run_shot("s02")
    assert "awaiting review: s02 (take 2" in reel_failure()
    sensed = review_sensor(dg.build_sensor_context(instance=studio.instance), workspace=workspace(studio))
    assert isinstance(sensed, dg.SensorResult) and sensed.run_requests == []
    assert studio.cli("approve", f"{sb}/s02", "--by", "ben")[0] == 0
    # the last approval is what review_sensor cuts the reel for
    sensed = review_sensor(dg.build_sensor_context(instance=studio.instance), workspace=workspace(studio))
    assert isinstance(sensed, dg.SensorResult)
    assert [r.partition_key for r in sensed.run_requests] == [sb]
    result = studio.run_reel()
    assert result.success
    latest = json.loads((studio.published / sb / "reel" / "latest.json").read_text())
    manifest = ReelManifest.model_validate_json(
        (studio.published / sb / "reel" / latest["files"]["manifest"]).read_text()
    )
    assert [(c.shot_id, c.take, c.approval.state, c.approval.decided_by) for c in manifest.clips] == [
        ("s01", 1, "approved", "ana"),
        ("s02", 2, "approved", "ben"),
    ]
    assert [c.sha256 for c in manifest.clips] == [studio.latest("s01")["sha256"], studio.latest("s02")["sha256"]]


def test_the_ledger_counts_every_take_paid_for(studio: Studio) -> None:
    sb = studio.write(two_shots()).id
    studio.run_shot("s01")
    studio.run_shot("s02")
    studio.set_shot("s01", take=2)
    studio.run_shot("s01")
    studio.set_shot("s01", take=None)  # back to take 1: reused, free
    studio.run_shot("s01")
    assert len(studio.fake.billed_request_ids) == 3
    assert studio.run_reel().success
    ledger = json.loads((studio.published / sb / "ledger.json").read_text())
    rows = {r["shot_id"]: r for r in ledger["rows"]}
    assert (rows["s01"]["take"], rows["s01"]["takes_paid"]) == (1, 2)
    assert rows["s01"]["takes_cost_usd"] == pytest.approx(2 * CLIP_COST)
    assert (rows["s02"]["take"], rows["s02"]["takes_paid"], rows["s02"]["takes_cost_usd"]) == (1, 1, CLIP_COST)
    totals = ledger["totals"]
    assert totals["takes_paid"] == 3
    assert totals["takes_cost_usd"] == pytest.approx(3 * CLIP_COST)  # discarded take 2 included
    assert totals["cost_usd"] == pytest.approx(2 * CLIP_COST)  # the clips the storyboard uses now
    assert totals["takes_cost_usd"] == pytest.approx(studio.fake.billed_total_usd)
    table = list(csv.DictReader(io.StringIO((studio.published / sb / "ledger.csv").read_text())))
    assert [r["shot_id"] for r in table] == ["s01", "s02", "(total)"]
    assert (table[0]["take"], table[0]["takes_paid"], table[0]["takes_cost_usd"]) == ("1", "2", "0.34")
    assert (table[2]["takes_paid"], table[2]["takes_cost_usd"]) == ("3", "0.51")
    md = studio.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("production_ledger"), asset_partitions=[sb]), limit=1
    ).records[0]
    assert md.asset_materialization.metadata["takes_cost_usd"].value == pytest.approx(3 * CLIP_COST)

    review_doc = studio.cli_json("review", sb)
    assert review_doc["cost_usd"] == pytest.approx(3 * CLIP_COST)
    assert {s["shot_id"]: s["spend"]["takes_paid"] for s in review_doc["shots"]} == {"s01": 2, "s02": 1}

    # The contact sheet puts s01's two takes side by side: one row per shot, two columns.
    sheet_md = (
        studio.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("contact_sheet"), asset_partitions=[sb]), limit=1
        )
        .records[0]
        .asset_materialization.metadata
    )
    assert sheet_md["takes"].value == {"s01": [1, 2], "s02": [1]}
    with Image.open(Path(sheet_md["uri"].value.removeprefix("file://"))) as sheet:
        assert sheet.size == (sheet_md["width"].value, sheet_md["height"].value)
    assert sheet_md["width"].value == 20 + 2 * (384 + 20)


def test_the_reel_cuts_only_the_published_final_clip(studio: Studio) -> None:
    sb = studio.write(two_shots()).id
    studio.run_shot("s01")
    studio.run_shot("s02")
    # A new caption, finished but not published: the latest final_clip is not what was published (reviewed).
    studio.set_shot("s02", caption="Gulls at noon")
    studio.run_shot("s02", assets=("final_clip",))
    result = studio.run_reel()
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert "the latest final clip is not the published one for s02" in message
    assert not list((studio.published / sb / "reel").glob("*.mp4"))
    studio.run_shot("s02", assets=("published_clip",))
    assert studio.run_reel().success


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["approve", "takes/s09"], "storyboard 'takes', shot 's09': no shot 's09'"),
        (["approve", "takes/s01", "--take", "0"], "shot 's01', field 'take': take 0 is not a take"),
        (["approve", "takes/s01", "--take", "-1"], "shot 's01', field 'take': take -1 is not a take"),
        (["approve", "takes/s01", "--take", "two"], "shot 's01', field 'take': take 'two' is not a whole number"),
        (["approve", "takes/s01", "--take", "3"], "shot 's01', field 'take': take 3 was never generated"),
        (["approve", "takes/s02"], "shot 's02', field 'take': take 1 was never generated"),
        (["reject", "takes/s01", "--note", "  "], "shot 's01', field 'note': a rejection needs a note"),
        (["approve", "takes/s01", "--by", " "], "shot 's01', field 'by'"),
        (["approve", "takes"], "does not name a shot"),
        (["takes", "takes/s09"], "storyboard 'takes', shot 's09'"),
        (["approve", "nowhere/s01"], "storyboard 'nowhere'"),
    ],
)
def test_bad_review_input_is_refused_and_nothing_is_written(studio: Studio, args: list[str], says: str) -> None:
    studio.write(two_shots())
    studio.run_shot("s01")
    code, out, err = studio.cli(*args)
    assert code == 1 and says in err and out == ""
    assert decisions(studio) == []


def test_review_job_refuses_bad_config_naming_the_shot(studio: Studio) -> None:
    studio.write(two_shots())
    studio.run_shot("s01")
    result = studio.review_job(shot="takes/s01", take=2, decision="approve")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "storyboard 'takes', shot 's01', field 'take': take 2 was never generated" in (
        failure.step_failure_data.user_failure_data.description
    )
    assert not studio.review_job(shot="takes__s01", decision="reject").success  # no note
    assert decisions(studio) == []
    with pytest.raises(dg.DagsterInvalidConfigError):
        studio.defs.resolve_job_def("review_job").execute_in_process(
            run_config={"ops": {"record_review_decision": {"config": {"shot": "takes/s01", "decision": "maybe"}}}},
            instance=studio.instance,
        )
