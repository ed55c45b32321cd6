"""storyboard_sensor registers partitions and runs only what is new or changed, reading only the storyboards
whose files changed; with autorun off it runs nothing, and what changed meanwhile runs once autorun is back on.
reel_sensor waits for every shot. Both skip archived storyboards."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import dagster as dg
import yaml

from assets.resources import WorkspaceResource
from pipelines.retention import ARCHIVED
from pipelines.sensors import build_sensors
from shotline.operating import OperatingSettings
from shotline.storyboard import load_storyboard
from testkit.storyboard_factory import tiny_storyboard, write_image, write_storyboard

storyboard_sensor, reel_sensor = build_sensors(OperatingSettings())

_AGO = itertools.count(1000, -1)


def evaluate(sensor, instance: dg.DagsterInstance, root: Path, tmp_path: Path, cursor: str | None = None):
    workspace = WorkspaceResource(storyboards=str(root), home=str(tmp_path / "home"))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace})
    return sensor(context)


def settle(root: Path) -> None:
    """Date every file as written a while ago (each call later than the last): files written in the last
    seconds are not trusted by the sensor's change detection yet, and are read at every tick."""
    stamp = time.time() - next(_AGO)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (stamp, stamp))


def apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def publish(instance: dg.DagsterInstance, folder: Path, *shot_ids: str) -> None:
    """What a run of clip_job leaves for the sensor to see: a published clip made for the shot's spec."""
    storyboard = load_storyboard(folder)
    for shot in storyboard.shots:
        if shot.id in shot_ids:
            spec = storyboard.shot_spec_hash(shot)
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    "published_clip", partition=shot.partition_key, metadata={"sha256": spec, "spec_sha256": spec}
                )
            )


def change(folder: Path, shot: int, subject: str) -> None:
    data = yaml.safe_load((folder / "storyboard.yaml").read_text())
    data["shots"][shot]["vars"]["subject"] = subject
    (folder / "storyboard.yaml").write_text(yaml.safe_dump(data))


def test_new_shots_are_registered_and_run_once(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=2)
    write_storyboard(root, {"id": "broken", "shots": [{"id": "x", "image": "missing.png", "prompt": "p"}]})
    settle(root)
    with dg.instance_for_test() as instance:
        first = evaluate(storyboard_sensor, instance, root, tmp_path)
        added = {r.partitions_def_name: set(r.partition_keys) for r in first.dynamic_partitions_requests}
        assert added == {"shots": {"alpha__s01", "alpha__s02"}, "storyboards": {"alpha"}}
        assert sorted(r.partition_key for r in first.run_requests) == ["alpha__s01", "alpha__s02"]
        assert all(r.run_key.startswith(r.partition_key + "@") for r in first.run_requests)

        apply(instance, first)
        unchanged = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=first.cursor)
        assert unchanged.run_requests == [] and unchanged.dynamic_partitions_requests == []
        assert len(unchanged.cursor) < 100  # the state is in the instance, not in every tick's cursor

        publish(instance, folder, "s01", "s02")
        change(folder, 1, "something else")
        settle(root)
        changed = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=unchanged.cursor)
        (request,) = changed.run_requests
        assert request.partition_key == "alpha__s02"
        current = load_storyboard(folder)
        spec = current.shot_spec_hash(current.shot("s02"))
        assert request.run_key.startswith(f"alpha__s02@{spec[:16]}~")  # names the spec it replaces, too


def test_reel_waits_until_every_shot_is_published(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "alpha", n_shots=2)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("storyboards", ["alpha"])
        result = evaluate(reel_sensor, instance, root, tmp_path)
        assert result.run_requests == [] and result.skip_reason
        for shot in ("s01", "s02"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization("published_clip", partition=f"alpha__{shot}", metadata={"sha256": shot * 8})
            )
        ready = evaluate(reel_sensor, instance, root, tmp_path)
        assert [r.partition_key for r in ready.run_requests] == ["alpha"]
        again = evaluate(reel_sensor, instance, root, tmp_path, cursor=ready.cursor)
        assert again.run_requests == [] and again.skip_reason


def test_only_storyboards_whose_files_changed_are_read_again(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    alpha, beta = tiny_storyboard(root, "alpha", n_shots=2), tiny_storyboard(root, "beta", n_shots=1)
    settle(root)
    with dg.instance_for_test() as instance:
        first = evaluate(storyboard_sensor, instance, root, tmp_path)
        apply(instance, first)
        publish(instance, alpha, "s01", "s02")
        publish(instance, beta, "s01")
        # alpha's file becomes unreadable, same size, same time: a sensor that read it would report it
        yaml_file = alpha / "storyboard.yaml"
        st = yaml_file.stat()
        yaml_file.write_text("x" * st.st_size)
        os.utime(yaml_file, ns=(st.st_atime_ns, st.st_mtime_ns))
        change(beta, 0, "a new subject")
        settle(beta)
        second = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["beta__s01"]
        # an image replaced in place (same name) is a change too
        publish(instance, beta, "s01")
        write_image(beta / "images" / "s01.png", colour=(200, 10, 10))
        settle(beta)
        third = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=second.cursor)
        assert [r.partition_key for r in third.run_requests] == ["beta__s01"]


def test_autorun_off_then_on_runs_what_changed_meanwhile(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=2)
    settle(root)
    with dg.instance_for_test() as instance:
        first = evaluate(storyboard_sensor, instance, root, tmp_path)
        apply(instance, first)
        publish(instance, folder, "s01", "s02")

        registering_only, _ = build_sensors(OperatingSettings(autorun=False))  # SHOTLINE_AUTORUN=0
        change(folder, 1, "changed while autorun was off")
        settle(root)
        off = evaluate(registering_only, instance, root, tmp_path, cursor=first.cursor)
        assert off.run_requests == []
        still_off = evaluate(registering_only, instance, root, tmp_path, cursor=off.cursor)
        assert still_off.run_requests == []

        on = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=still_off.cursor)
        assert [r.partition_key for r in on.run_requests] == ["alpha__s02"]
        publish(instance, folder, "s02")  # the run happened
        after = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=on.cursor)
        assert after.run_requests == []


def test_going_back_to_an_earlier_spec_runs_again(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=1)
    settle(root)
    with dg.instance_for_test() as instance:
        first = evaluate(storyboard_sensor, instance, root, tmp_path)
        apply(instance, first)
        publish(instance, folder, "s01")
        change(folder, 0, "b")
        settle(root)
        to_b = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=first.cursor)
        publish(instance, folder, "s01")
        change(folder, 0, "thing 1")  # back to the first spec
        settle(root)
        back = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=to_b.cursor)
        (request,) = back.run_requests
        assert request.run_key not in {r.run_key for r in first.run_requests + to_b.run_requests}


def test_a_reset_cursor_reads_every_storyboard_again(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    folder = tiny_storyboard(root, "alpha", n_shots=2)
    settle(root)
    with dg.instance_for_test() as instance:
        first = evaluate(storyboard_sensor, instance, root, tmp_path)
        apply(instance, first)
        publish(instance, folder, "s01")
        reset = evaluate(storyboard_sensor, instance, root, tmp_path, cursor=None)
        assert [r.partition_key for r in reset.run_requests] == ["alpha__s02"]


def test_archived_storyboards_are_skipped_by_both_sensors(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "alpha", n_shots=1)
    tiny_storyboard(root, "beta", n_shots=1)
    settle(root)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ARCHIVED.name, ["alpha"])
        instance.add_dynamic_partitions("storyboards", ["alpha"])
        result = evaluate(storyboard_sensor, instance, root, tmp_path)
        added = {r.partitions_def_name: set(r.partition_keys) for r in result.dynamic_partitions_requests}
        assert added == {"shots": {"beta__s01"}, "storyboards": {"beta"}}
        assert [r.partition_key for r in result.run_requests] == ["beta__s01"]
        instance.report_runless_asset_event(
            dg.AssetMaterialization("published_clip", partition="alpha__s01", metadata={"sha256": "a" * 64})
        )
        reel = evaluate(reel_sensor, instance, root, tmp_path)
        assert reel.run_requests == []
