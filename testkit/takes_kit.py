"""A small studio for the takes and review tests: one storyboard on disk, the real Definitions on fal (the fake
server over HTTP) publishing to a local folder, a Dagster test instance, and the `shotline` command line with
the same environment."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from shotline.cli import main as shotline
from shotline.config import Settings
from shotline.storyboard import Storyboard, load_storyboard
from testkit.fakes.fal_server import FakeFal
from testkit.storyboard_factory import write_storyboard

SHOT_ASSETS = ("source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip")


def two_shots(storyboard_id: str = "takes", *, reel: dict[str, Any] | None = None) -> dict[str, Any]:
    """Two 2-second 480p shots (a fal clip costs 2 x $0.08 + $0.01 = $0.17)."""
    return {
        "id": storyboard_id,
        "title": "Takes",
        "defaults": {"duration": 2, "resolution": "480p", "fade": 0.2},
        "shots": [
            {"id": "s01", "image": "images/s01.png", "prompt": "slow push-in on boats", "caption": "Boats"},
            {"id": "s02", "image": "images/s02.png", "prompt": "gulls over the pier", "caption": "Gulls"},
        ],
        "reel": {"transition": "cut", **(reel or {})},
    }


class Studio:
    def __init__(self, root: Path, env: dict[str, str], instance: dg.DagsterInstance, fake: FakeFal) -> None:
        self.root = root
        self.env = env
        self.instance = instance
        self.fake = fake
        self.defs = build_definitions(Settings.from_env(env))
        self.published = Path(env["SHOTLINE_PUBLISH_URI"])
        self.data: dict[str, Any] = {}

    # -- the storyboard -------------------------------------------------------------------------------------

    def write(self, data: dict[str, Any]) -> Storyboard:
        self.data = data
        images = {s["image"]: (640, 360) for s in data["shots"]}
        folder = write_storyboard(self.root / "storyboards", data, images=images)
        storyboard = load_storyboard(folder)
        keys = [s.partition_key for s in storyboard.shots]
        new = [k for k in keys if not self.instance.has_dynamic_partition("shots", k)]
        if new:
            self.instance.add_dynamic_partitions("shots", new)
        if not self.instance.has_dynamic_partition("storyboards", storyboard.id):
            self.instance.add_dynamic_partitions("storyboards", [storyboard.id])
        return storyboard

    def set_shot(self, shot_id: str, **fields: Any) -> Storyboard:
        """Change (or, with None, remove) fields of one shot and write the storyboard again."""
        for shot in self.data["shots"]:
            if shot["id"] == shot_id:
                for name, value in fields.items():
                    if value is None:
                        shot.pop(name, None)
                    else:
                        shot[name] = value
        return self.write(self.data)

    @property
    def storyboard_id(self) -> str:
        return self.data["id"]

    # -- Dagster --------------------------------------------------------------------------------------------

    def run_shot(self, shot_id: str, *, assets: tuple[str, ...] | None = None) -> dg.ExecuteInProcessResult:
        key = f"{self.storyboard_id}__{shot_id}"
        if assets is None:
            job = self.defs.resolve_job_def("clip_job")
        else:
            job = self.defs.resolve_implicit_global_asset_job_def().get_subset(
                asset_selection={dg.AssetKey(a) for a in assets}
            )
        result = job.execute_in_process(partition_key=key, instance=self.instance)
        assert result.success
        return result

    def run_reel(self) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("reel_job").execute_in_process(
            partition_key=self.storyboard_id, instance=self.instance, raise_on_error=False
        )

    def review_job(self, **config: Any) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("review_job").execute_in_process(
            run_config={"ops": {"record_review_decision": {"config": config}}},
            instance=self.instance,
            raise_on_error=False,
        )

    def materialization(self, asset: str, shot_id: str) -> dict[str, Any]:
        key = f"{self.storyboard_id}__{shot_id}"
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
        ).records
        assert records, f"{asset} has no materialization for {key}"
        return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}

    # -- what is published ----------------------------------------------------------------------------------

    def folder(self, shot_id: str) -> Path:
        return self.published / self.storyboard_id / shot_id

    def latest(self, shot_id: str) -> dict[str, Any]:
        return json.loads((self.folder(shot_id) / "latest.json").read_text())

    def manifest(self, shot_id: str, sha256: str) -> dict[str, Any]:
        return json.loads((self.folder(shot_id) / f"{sha256[:12]}.json").read_text())

    # -- the command line -----------------------------------------------------------------------------------

    def cli(self, *args: str) -> tuple[int, str, str]:
        """`shotline <args>`: (exit code, stdout, stderr); argparse's own refusals exit with 2."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = shotline(list(args))
            except SystemExit as exc:
                code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()

    def cli_json(self, *args: str) -> Any:
        code, out, err = self.cli(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@contextlib.contextmanager
def open_studio(tmp_path: Path, fake: FakeFal, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    fake.queue_polls, fake.progress_polls = 1, 1
    env = {
        "FAL_KEY": fake.key,
        "SHOTLINE_FAL_QUEUE_URL": fake.url,
        "SHOTLINE_FAL_REST_URL": fake.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake.cdn_url,
        "SHOTLINE_FAL_API_URL": fake.api_url,
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.05",
        "SHOTLINE_FAL_MAX_POLL_INTERVAL_S": "0.1",
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(tmp_path / "storyboards"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
    }
    for name, value in env.items():  # the resources' EnvVar and the command line read the environment
        monkeypatch.setenv(name, value)
    with dg.instance_for_test() as instance:
        yield Studio(tmp_path, env, instance, fake)
