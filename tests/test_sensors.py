"""storyboard_sensor registers partitions and runs only what is new or changed; reel_sensor waits for every shot."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import yaml

from assets.resources import WorkspaceResource
from pipelines.sensors import reel_sensor, storyboard_sensor
from tests.storyboard_factory import tiny_storyboard, write_storyboard


def evaluate(sensor, instance: dg.DagsterInstance, root: Path, tmp_path: Path, cursor: str | None = None):
    workspace = WorkspaceResource(storyboards=str(root), home=str(tmp_path / "home"))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace})
    return sensor(context)


def test_new_shots_are_registered_and_run_once(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=2)
    write_storyboard(root, {"id": "broken", "shots": [{"id": "x", "image": "missing.png", "prompt": "p"}]})
    with dg.instance_for_test() as instance:
        first = evaluate(storyboard_sensor, instance, root, tmp_path)
        added = {r.partitions_def_name: set(r.partition_keys) for r in first.dynamic_partitions_requests}
        assert added == {"shots": {"alpha__s01", "alpha__s02"}, "storyboards": {"alpha"}}
        assert sorted(r.partition_key for r in first.run_requests) == ["alpha__s01", "alpha__s02"]
        assert all(r.run_key.startswith(r.partition_key + "@") for r in first.run_requests)

        for request in first.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        unchanged = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=first.cursor)
        assert unchanged.run_requests == [] and unchanged.dynamic_partitions_requests == []

        data = yaml.safe_load((folder / "storyboard.yaml").read_text())
        data["shots"][1]["vars"]["subject"] = "something else"
        (folder / "storyboard.yaml").write_text(yaml.safe_dump(data))
        changed = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=unchanged.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["alpha__s02"]
        assert json.loads(changed.cursor)["alpha__s02"] != json.loads(first.cursor)["alpha__s02"]


def test_reel_waits_until_every_shot_is_published(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "alpha", n_shots=2)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("storyboards", ["alpha"])
        result = evaluate(reel_sensor, instance, root, tmp_path)
        assert isinstance(result, dg.SkipReason)
        for shot in ("s01", "s02"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization("published_clip", partition=f"alpha__{shot}", metadata={"sha256": shot * 8})
            )
        ready = evaluate(reel_sensor, instance, root, tmp_path)
        assert [r.partition_key for r in ready.run_requests] == ["alpha"]
        again = evaluate(reel_sensor, instance, root, tmp_path, cursor=ready.cursor)
        assert isinstance(again, dg.SkipReason)
