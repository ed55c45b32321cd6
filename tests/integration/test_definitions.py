"""The Definitions load, have the design's shape, and pass Dagster's own validation of workspace.yaml."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from pipelines.definitions import build_definitions, defs
from shotline.config import Settings
from shotline.operating import OperatingSettings
from testkit.storyboard_factory import tiny_storyboard

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_with_the_design_graph() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip", "storyboard_reel"} | {
        "contact_sheet",
        "production_ledger",
    }
    chain = ["source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip"]
    for upstream, downstream in itertools.pairwise(chain):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys
    for key in chain:
        node = graph.get(dg.AssetKey(key))
        assert node.partitions_def.name == "shots" and node.code_version
    for key in ("storyboard_reel", "contact_sheet", "production_ledger"):
        assert graph.get(dg.AssetKey(key)).partitions_def.name == "storyboards"
    assert graph.get(dg.AssetKey("raw_clip")).pools == {"fal"}
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"clip_job", "reel_job", "review_job"}
    assert {s.name for s in defs.sensors} == {"storyboard_sensor", "reel_sensor", "clip_automation_sensor"} | {
        "review_sensor",
        "archive_sensor",
    }


def test_fal_key_is_bound_as_an_env_var_never_a_value() -> None:
    resources = build_definitions(Settings.from_env({"FAL_KEY": "sk-secret-value"})).resources
    generator = resources["generator"]
    assert generator.kind == "fal"
    assert "sk-secret-value" not in repr(generator)
    assert "sk-secret-value" not in repr(resources)


def test_dagster_cli_validates_the_workspace(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAL_KEY"} | {"DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_settings_reach_every_sensor_schedule_and_resource(tmp_path: Path) -> None:
    operating = OperatingSettings(
        sensor_interval_s=11,
        autorun=False,
        sweep_cron="15 3 * * 1-5",
        refresh_cron="45 6 * * *",
        timezone="Europe/Paris",
        archive_after_days=5,
    )
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "alpha", n_shots=2)
    settings = Settings(storyboards=str(root), home=tmp_path / "home", fal_deadline_s=42.0, operating=operating)
    built = build_definitions(settings)

    intervals = {s.name: s.minimum_interval_seconds for s in built.sensors}
    assert intervals.pop("archive_sensor") == 3600
    assert set(intervals.values()) == {11}
    sweep, refresh = built.resolve_schedule_def("nightly_sweep"), built.resolve_schedule_def("nightly_refresh")
    assert (sweep.cron_schedule, sweep.execution_timezone) == ("15 3 * * 1-5", "Europe/Paris")
    assert (refresh.cron_schedule, refresh.execution_timezone) == ("45 6 * * *", "Europe/Paris")
    workspace, publisher = built.resources["workspace"], built.resources["publisher"]
    assert workspace.storyboards == str(root) and workspace.home == str(tmp_path / "home")
    assert publisher.publish_uri == str(tmp_path / "home" / "published")
    assert built.resources["generator"].deadline_s == 42.0

    with dg.instance_for_test() as instance:
        # autorun off: the sensor registers the new shots and runs none of them
        context = dg.build_sensor_context(instance=instance, resources={"workspace": workspace})
        sensed = built.resolve_sensor_def("storyboard_sensor")(context)
        assert sensed.run_requests == []
        assert {r.partitions_def_name for r in sensed.dynamic_partitions_requests} == {"shots", "storyboards"}
        # archiving on (after 5 days): the sensor looks at storyboards instead of skipping
        context = dg.build_sensor_context(instance=instance, resources={"workspace": workspace, "publisher": publisher})
        archived = built.resolve_sensor_def("archive_sensor")(context)
        assert isinstance(archived, dg.SensorResult) and not archived.skip_reason
        off = build_definitions(settings.model_copy(update={"operating": OperatingSettings()}))
        assert "off" in off.resolve_sensor_def("archive_sensor")(context).skip_message
