"""The blocking deliverable checks on final_clip and storyboard_reel, run through Dagster's own jobs: they
pass on real renders, and fail, naming what is wrong, on an off-spec file (which then blocks publishing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from shotline.config import Settings
from shotline.media.deliverable import CHECK_NAMES
from shotline.media.probe import probe
from shotline.store import WorkStore
from shotline.storyboard import load_storyboard
from testkit.mediakit import make_clip
from testkit.storyboard_factory import tiny_storyboard


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FAL_KEY", raising=False)
    root = tmp_path / "storyboards"
    storyboard = load_storyboard(tiny_storyboard(root, n_shots=2, duration=2))
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
        "SHOTLINE_GENERATOR": "preview",
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", [s.partition_key for s in storyboard.shots])
        instance.add_dynamic_partitions("storyboards", [storyboard.id])
        yield build_definitions(Settings.from_env(env)), instance, storyboard, WorkStore(env["SHOTLINE_HOME"])


def _evaluations(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(asset)}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def _replace_stored(store: WorkStore, sha256: str, with_file: Path) -> None:
    """Corrupt the working store: the object named `sha256` now holds another file."""
    obj = store.get(sha256, ".mp4")
    assert obj is not None
    obj.path.chmod(0o644)
    shutil.copyfile(with_file, obj.path)


def test_deliverable_checks_pass_then_block_an_off_spec_file(world, tmp_path: Path) -> None:
    defs, instance, storyboard, store = world
    clip_job, reel_job = defs.resolve_job_def("clip_job"), defs.resolve_job_def("reel_job")
    results = {}
    for shot in storyboard.shots:
        results[shot.id] = clip_job.execute_in_process(partition_key=shot.partition_key, instance=instance)
        assert results[shot.id].success
    checks = _evaluations(results["s01"], "final_clip")
    assert set(checks) == {*CHECK_NAMES, "content_credentials"}
    assert all(e.passed for e in checks.values()), {n: e.description for n, e in checks.items() if not e.passed}
    assert checks["duration"].metadata["expected_s"].value == pytest.approx(2.0)
    # The deliverable carries its lineage: title, storyboard, shot, generator and where its manifest is.
    final_sha = results["s01"].asset_materializations_for_node("final_clip")[0].metadata["sha256"].value
    stored = store.get(final_sha, ".mp4")
    assert stored is not None
    tags = probe(stored.path).tags
    assert tags["title"] == "Tiny: s01" and tags["storyboard"] == "tiny" and tags["shot"] == "s01"
    assert tags["generator"] == "preview" and any("latest.json" in v for v in tags.values())

    reel = reel_job.execute_in_process(partition_key=storyboard.id, instance=instance)
    assert reel.success
    reel_checks = _evaluations(reel, "storyboard_reel")
    assert set(reel_checks) == {*CHECK_NAMES, "chapters", "content_credentials"}
    assert all(e.passed for e in reel_checks.values()), {n: e.description for n, e in reel_checks.items()}

    # An off-spec file where the deliverable should be: the next materialization (a cache hit) is checked
    # again, every wrong property is named, and the blocking checks stop published_clip.
    final = results["s01"].asset_materializations_for_node("final_clip")[0].metadata["sha256"].value
    wrong = make_clip(tmp_path / "wrong.mp4", size=(320, 240), duration=1.0, audio="mono", faststart=False)
    _replace_stored(store, final, wrong)
    again = clip_job.execute_in_process(partition_key="tiny__s01", instance=instance, raise_on_error=False)
    assert not again.success
    failed = {n: e.description for n, e in _evaluations(again, "final_clip").items() if not e.passed}
    assert "frame is 320x240, expected 854x480" in failed["frame_size"]
    assert "expected 2.000 s" in failed["duration"]
    assert "44100 Hz 1 channels" in failed["audio"]
    assert "moov is after mdat" in failed["faststart"]
    assert "Constrained Baseline" in failed["codec"]
    assert "loudness" in failed and "colour" in failed
    assert "decodes" not in failed and "pixel_format" not in failed  # what is right is not blamed
    assert "published_clip" not in _materialized(again)

    reel_sha = reel.asset_materializations_for_node("storyboard_reel")[0].metadata["sha256"].value
    _replace_stored(store, reel_sha, make_clip(tmp_path / "short.mp4", size=(854, 480), duration=1.0))
    reel_again = reel_job.execute_in_process(partition_key=storyboard.id, instance=instance, raise_on_error=False)
    assert not reel_again.success
    failed = {n: e.description for n, e in _evaluations(reel_again, "storyboard_reel").items() if not e.passed}
    assert (
        "expected 3.708 s" in failed["duration"]
    )  # 0.3 s of crossfade is 7 whole frames and "chapters [], expected ['s01', 's02']" in failed["chapters"]
    assert "frame_size" not in failed
