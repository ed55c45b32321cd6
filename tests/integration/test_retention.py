"""Partition retention: `shotline archive` refuses a storyboard that is not fully published (naming what is
missing or damaged), then removes its partitions from the Dagster instance while its history stays; the
sensors skip it; `shotline restore` puts the partitions back and nothing runs again. SHOTLINE_ARCHIVE_AFTER_DAYS
archives untouched storyboards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from assets.resources import WorkspaceResource
from pipelines.definitions import build_definitions
from pipelines.retention import (
    ARCHIVE_AFTER_DAYS,
    ARCHIVED,
    archive_record,
    auto_archive,
    build_archive_sensor,
    workspace_from,
)
from pipelines.sensors import build_sensors
from shotline.cli import main
from shotline.config import Settings
from shotline.operating import OperatingSettings
from testkit.storyboard_factory import tiny_storyboard

storyboard_sensor, reel_sensor = build_sensors(OperatingSettings())
archive_sensor = build_archive_sensor(OperatingSettings())

KEYS = ["alpha__s01", "alpha__s02"]


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dg.DagsterInstance, dict[str, str], Path]:
    monkeypatch.delenv("FAL_KEY", raising=False)
    monkeypatch.delenv(ARCHIVE_AFTER_DAYS, raising=False)
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=2, duration=1)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
        "DAGSTER_HOME": str(home),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.add_dynamic_partitions("shots", KEYS)
        instance.add_dynamic_partitions("storyboards", ["alpha"])
        yield instance, env, folder


def run(defs: dg.Definitions, job: str, key: str, instance: dg.DagsterInstance) -> None:
    assert defs.resolve_job_def(job).execute_in_process(partition_key=key, instance=instance).success


def tick(sensor, instance: dg.DagsterInstance, env: dict[str, str], cursor: str | None = None):
    workspace = WorkspaceResource(storyboards=env["SHOTLINE_STORYBOARDS"], home=env["SHOTLINE_HOME"])
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace}))


def shotline(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_archive_checks_everything_is_published_then_restore_brings_it_back(
    setup: tuple[dg.DagsterInstance, dict[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    instance, env, folder = setup
    defs = build_definitions(Settings.from_env(env))
    run(defs, "clip_job", "alpha__s01", instance)

    code, said = shotline("archive", "alpha", capsys=capsys)
    assert code == 1
    assert "alpha__s02: not published yet" in said and "the reel: not published yet" in said
    assert "the ledger: not published yet" in said
    assert set(instance.get_dynamic_partitions("shots")) == set(KEYS)  # nothing removed

    run(defs, "clip_job", "alpha__s02", instance)
    run(defs, "reel_job", "alpha", instance)
    reel_first = tick(reel_sensor, instance, env)
    # a damaged manifest is refused, by name
    manifest = Path(env["SHOTLINE_PUBLISH_URI"]) / "alpha" / "s02"
    (victim,) = [p for p in manifest.glob("*.json") if p.name != "latest.json"]
    good = victim.read_bytes()
    victim.write_bytes(good.replace(b'"alpha"', b'"alphA"', 1))
    code, said = shotline("archive", "alpha", "--check", capsys=capsys)
    assert code == 1 and "alpha__s02: manifest:" in said, said
    victim.write_bytes(good)

    code, said = shotline("archive", "alpha", capsys=capsys)
    assert code == 0, said
    assert "archived alpha: 2 shot partitions" in said and "shotline restore alpha" in said
    assert instance.get_dynamic_partitions("shots") == [] and instance.get_dynamic_partitions("storyboards") == []
    assert instance.get_dynamic_partitions(ARCHIVED.name) == ["alpha"]
    record = archive_record(instance, "alpha")
    assert record is not None and record.shots == KEYS and set(record.manifests) == set(KEYS)
    for key in KEYS:  # the history stays: materializations in the event log, manifests where they were published
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("published_clip"), asset_partitions=[key]), limit=1
        ).records
        assert found and Path(record.manifests[key].removeprefix("file://")).is_file()
    ledger = json.loads((Path(env["SHOTLINE_PUBLISH_URI"]) / "alpha" / "ledger.json").read_text())
    assert [row["status"] for row in ledger["rows"]] == ["published", "published"]

    # the sensors leave an archived storyboard alone, though its folder is still there
    sensed = tick(storyboard_sensor, instance, env)
    assert sensed.run_requests == [] and sensed.dynamic_partitions_requests == []
    assert tick(reel_sensor, instance, env, reel_first.cursor).run_requests == []
    code, said = shotline("archive", "alpha", capsys=capsys)
    assert code == 0  # again: nothing left to do

    code, said = shotline("restore", "alpha", capsys=capsys)
    assert code == 0 and "restored alpha: 2 shot partitions" in said
    assert sorted(instance.get_dynamic_partitions("shots")) == KEYS
    assert instance.get_dynamic_partitions("storyboards") == ["alpha"]
    assert instance.get_dynamic_partitions(ARCHIVED.name) == []
    status = instance.get_status_by_partition(
        dg.AssetKey("published_clip"), KEYS, dg.DynamicPartitionsDefinition(name="shots")
    )
    assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    # nothing runs again: every clip and the reel are what the storyboard asks for
    assert tick(storyboard_sensor, instance, env, sensed.cursor).run_requests == []
    assert tick(reel_sensor, instance, env, reel_first.cursor).run_requests == []
    code, said = shotline("restore", "alpha", capsys=capsys)
    assert code == 1 and "not archived" in said

    data = yaml.safe_load((folder / "storyboard.yaml").read_text())
    data["shots"][1]["caption"] = "changed since"
    (folder / "storyboard.yaml").write_text(yaml.safe_dump(data))
    code, said = shotline("archive", "alpha", capsys=capsys)
    assert code == 1 and "alpha__s02: the storyboard changed since its clip was published (stale)" in said


def test_untouched_storyboards_are_archived_after_the_set_days(
    setup: tuple[dg.DagsterInstance, dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, env, _ = setup
    defs = build_definitions(Settings.from_env(env))
    for key in KEYS:
        run(defs, "clip_job", key, instance)
    run(defs, "reel_job", "alpha", instance)
    workspace, publisher = workspace_from(Settings.from_env())
    refused: dict[str, float] = {}
    assert auto_archive(instance, workspace, publisher, after_days=1, now=time.time(), refused=refused) == ([], {})
    later = time.time() + 2 * 86400
    archived, refusals = auto_archive(instance, workspace, publisher, after_days=1, now=later, refused=refused)
    assert archived == ["alpha"] and refusals == {}
    assert instance.get_dynamic_partitions(ARCHIVED.name) == ["alpha"]

    context = dg.build_sensor_context(
        instance=instance, resources={"workspace": workspace, "publisher": defs.resources["publisher"]}
    )
    assert "off" in archive_sensor(context).skip_message
    monkeypatch.setenv(ARCHIVE_AFTER_DAYS, "30")
    assert Settings.from_env().operating.archive_after_days == 30
    with pytest.raises(ValueError, match=ARCHIVE_AFTER_DAYS):
        Settings.from_env({ARCHIVE_AFTER_DAYS: "soon"})
