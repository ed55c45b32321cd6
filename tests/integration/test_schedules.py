"""Operating knobs from the environment, the nightly schedules against real runs in a Dagster instance, and the
declarative automation of the post-generation stages."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.defs_state.base import set_defs_state_storage

from assets.resources import GeneratorResource, WorkspaceResource
from pipelines.definitions import build_definitions
from pipelines.schedules import MAX_SWEEP_ATTEMPTS, SPEC_TAG, SWEEP_TAG, build_schedules
from shotline import catalog
from shotline.budget import Budget
from shotline.config import Settings
from shotline.db import open_database
from shotline.db.engine import sqlite_url
from shotline.fal.pricing import estimate_cost_usd, to_cents
from shotline.operating import OperatingSettings, is_cron_string
from shotline.storyboard import load_storyboard
from testkit.fakes.fal_server import TEST_KEY, FakeFal
from testkit.pipeline_runner import run_storyboard
from testkit.storyboard_factory import tiny_storyboard

REPO = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


# -- configuration ---------------------------------------------------------------------------------------------


def test_operating_settings_come_from_the_environment() -> None:
    assert OperatingSettings.from_env({}) == OperatingSettings()
    settings = OperatingSettings.from_env(
        {
            "SHOTLINE_SENSOR_INTERVAL_S": "7",
            "SHOTLINE_AUTORUN": "0",
            "SHOTLINE_SWEEP_CRON": "15 3 * * 1-5",
            "SHOTLINE_REFRESH_CRON": "45 6 * * *",
            "SHOTLINE_SCHEDULE_TIMEZONE": "Europe/Paris",
        }
    )
    assert settings == OperatingSettings(
        sensor_interval_s=7,
        autorun=False,
        sweep_cron="15 3 * * 1-5",
        refresh_cron="45 6 * * *",
        timezone="Europe/Paris",
    )
    sweep, refresh = build_schedules(settings)
    assert (sweep.name, sweep.cron_schedule, sweep.execution_timezone) == (
        "nightly_sweep",
        "15 3 * * 1-5",
        "Europe/Paris",
    )
    assert (refresh.name, refresh.cron_schedule) == ("nightly_refresh", "45 6 * * *")
    assert sweep.default_status == refresh.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHOTLINE_SENSOR_INTERVAL_S", "0"),
        ("SHOTLINE_SENSOR_INTERVAL_S", "half a minute"),
        ("SHOTLINE_AUTORUN", "maybe"),
        ("SHOTLINE_SWEEP_CRON", "every night"),
        ("SHOTLINE_REFRESH_CRON", "61 2 * * *"),
        ("SHOTLINE_SCHEDULE_TIMEZONE", "Mars/Olympus"),
        ("SHOTLINE_ARCHIVE_AFTER_DAYS", "-3"),
    ],
)
def test_a_bad_setting_is_refused_by_name(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as error:
        OperatingSettings.from_env({variable: value})
    assert repr(value) in str(error.value)


@pytest.mark.parametrize(
    ("cron", "valid"),
    [
        ("0 2 * * *", True),
        ("15 3 * * 1-5", True),
        ("*/15 0-6 1,15 jan-mar mon-fri", True),
        ("0 0 L * *", True),
        ("0 0 * * 1#2", True),
        ("@daily", True),
        ("0 0 * * 7", True),
        ("0 0 30 2 *", False),  # no February has one
        ("0 2 * * * *", False),  # six fields: seconds are not Dagster's
        ("0 24 * * *", False),
        ("*/0 * * * *", False),
        ("0 0 * * 8", False),
    ],
)
def test_cron_strings_are_read_as_dagster_reads_them(cron: str, valid: bool) -> None:
    assert is_cron_string(cron) is valid
    if valid:
        assert OperatingSettings.from_env({"SHOTLINE_SWEEP_CRON": cron}).sweep_cron == cron
    else:
        with pytest.raises(ValueError, match="SHOTLINE_SWEEP_CRON"):
            OperatingSettings.from_env({"SHOTLINE_SWEEP_CRON": cron})


def test_sensor_intervals_come_from_the_environment() -> None:
    code = (
        "from pipelines.definitions import defs\n"
        "print(sorted((s.name, s.minimum_interval_seconds) for s in defs.sensors))"
    )
    env = {**os.environ, "SHOTLINE_SENSOR_INTERVAL_S": "7"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    intervals = dict(ast.literal_eval(out.strip()))
    # archiving looks at storyboards untouched for days: hourly is often enough
    assert intervals.pop("archive_sensor") == 3600, out
    assert set(intervals.values()) == {7} and {"storyboard_sensor", "reel_sensor"} <= set(intervals), out


def test_without_autorun_the_sensor_registers_shots_and_runs_nothing(tmp_path: Path) -> None:
    settings = Settings.from_env({"SHOTLINE_AUTORUN": "0"})
    storyboard_sensor = build_definitions(settings).resolve_sensor_def("storyboard_sensor")
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "alpha", n_shots=2)
    workspace = WorkspaceResource(storyboards=str(root), home=str(tmp_path / "home"))
    with dg.instance_for_test() as instance:
        result = storyboard_sensor(dg.build_sensor_context(instance=instance, resources={"workspace": workspace}))
        assert result.run_requests == []
        added = {r.partitions_def_name: set(r.partition_keys) for r in result.dynamic_partitions_requests}
        assert added == {"shots": {"alpha__s01", "alpha__s02"}, "storyboards": {"alpha"}}


# -- the nightly sweep -----------------------------------------------------------------------------------------


def tick(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, **resources: object):
    # Loading definitions reads Dagster's "current" defs-state storage, which earlier tests can leave pointing
    # at an instance that no longer exists: pin it to this test's instance.
    with set_defs_state_storage(instance.defs_state_storage):
        context = dg.build_schedule_context(
            instance=instance, resources=resources, repository_def=defs.get_repository_def()
        )
        return defs.resolve_schedule_def(name).evaluate_tick(context)


def _sweep(instance: dg.DagsterInstance, workspace: WorkspaceResource, generator: GeneratorResource):
    return tick(
        build_definitions(Settings.from_env({})), "nightly_sweep", instance, workspace=workspace, generator=generator
    )


def test_nightly_sweep_retries_failed_shots_cheapest_first_within_the_budget(
    fake_fal: FakeFal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAL_KEY", TEST_KEY)
    root, home = tmp_path / "storyboards", tmp_path / "home"
    tiny_storyboard(root, "night", n_shots=5, duration=1)
    keys = [f"night__s{i:02d}" for i in range(1, 6)]
    env = {
        "FAL_KEY": TEST_KEY,
        "SHOTLINE_GENERATOR": "fal",
        "SHOTLINE_FAL_QUEUE_URL": fake_fal.url,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.02",
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_HOME": str(home),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
    }
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("publishing under a file fails")
    ok_job = build_definitions(Settings.from_env(env)).resolve_job_def("clip_job")
    broken_publish = build_definitions(
        Settings.from_env({**env, "SHOTLINE_PUBLISH_URI": str(blocked)})
    ).resolve_job_def("clip_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", keys)

        def run(job: dg.JobDefinition, key: str) -> bool:
            return job.execute_in_process(
                partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
            ).success

        assert run(ok_job, keys[0])  # published
        assert not run(broken_publish, keys[1])  # generated, then publishing failed: retrying costs nothing
        assert not run(broken_publish, keys[2])
        fake_fal.content_policy()
        assert not run(ok_job, keys[3])  # generation refused: a retry would submit again
        # keys[4] never ran: missing, not failed, so not the sweep's business
        assert len(fake_fal.submits) == 4

        workspace = WorkspaceResource(storyboards=str(root), home=str(home))
        generator = GeneratorResource(kind="fal", fal_queue_url=fake_fal.url)
        every = _sweep(instance, workspace, generator)
        assert [r.partition_key for r in every.run_requests] == [keys[1], keys[2], keys[3]]
        assert all(r.tags[SWEEP_TAG] == "retry" and r.job_name in (None, "clip_job") for r in every.run_requests)

        spent = Budget(open_database(sqlite_url(home)), None).spend().total  # the 422 counts: it may be billed
        assert spent == 4 * to_cents(estimate_cost_usd("480p", 1))
        estimate = to_cents(estimate_cost_usd("480p", 1))
        short = GeneratorResource(kind="fal", budget_usd=float(spent + estimate - Decimal("0.01")))
        assert [r.partition_key for r in _sweep(instance, workspace, short).run_requests] == [keys[1], keys[2]]
        enough = GeneratorResource(kind="fal", budget_usd=float(spent + estimate))
        assert len(_sweep(instance, workspace, enough).run_requests) == 3

        # a shot the sweep already retried MAX_SWEEP_ATTEMPTS nights for this spec is left for a person
        spec = catalog.scan(root).shot_specs()[keys[1]][:16]
        for _ in range(MAX_SWEEP_ATTEMPTS):
            instance.add_run(
                DagsterRun(
                    job_name="clip_job",
                    tags={SWEEP_TAG: "retry", SPEC_TAG: spec, "dagster/partition": keys[1]},
                )
            )
        assert [r.partition_key for r in _sweep(instance, workspace, generator).run_requests] == [keys[2], keys[3]]

        # the retry itself reuses the generated clip: no new paid request
        assert run(ok_job, keys[2])
        assert len(fake_fal.submits) == 4
        assert keys[2] not in [r.partition_key for r in _sweep(instance, workspace, generator).run_requests]


# -- the nightly refresh ---------------------------------------------------------------------------------------


def test_nightly_refresh_recuts_stale_reels_and_rebuilds_every_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "fresh", n_shots=2, duration=1)
    tiny_storyboard(root, "partial", n_shots=2, duration=1)
    env = {
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
    }
    workspace = WorkspaceResource(storyboards=str(root), home=env["SHOTLINE_HOME"])
    defs = build_definitions(Settings.from_env(env))
    ledger = [dg.AssetKey("production_ledger")]

    def planned(instance: dg.DagsterInstance) -> list[tuple[str, object]]:
        result = tick(defs, "nightly_refresh", instance, workspace=workspace)
        return [(r.partition_key, r.asset_selection) for r in result.run_requests or []]

    with dg.instance_for_test() as instance:
        run_storyboard(load_storyboard(root / "fresh"), env, instance, reel=False)
        instance.add_dynamic_partitions("storyboards", ["partial"])
        # `fresh` is complete and never cut: the whole reel_job; `partial` has nothing published: its ledger
        assert planned(instance) == [("fresh", None), ("partial", ledger)]

        job = defs.resolve_job_def("reel_job")
        assert job.execute_in_process(partition_key="fresh", instance=instance, run_config=QUIET).success
        assert planned(instance) == [("fresh", ledger), ("partial", ledger)]

        clip_job = defs.resolve_job_def("clip_job")
        assert clip_job.execute_in_process(partition_key="fresh__s02", instance=instance, run_config=QUIET).success
        assert planned(instance) == [("fresh", None), ("partial", ledger)]  # a clip was published after the cut

        # what the schedule asks for runs: the ledger alone, for a storyboard with nothing published
        only_ledger = job.get_subset(asset_selection=set(ledger))
        assert only_ledger.execute_in_process(partition_key="partial", instance=instance, run_config=QUIET).success


def test_without_a_ledger_the_refresh_only_recuts() -> None:
    sweep, refresh = build_schedules(OperatingSettings(), ledger=None)
    assert refresh.job_name == "reel_job" and "ledger" not in (refresh.description or "")
    assert sweep.job_name == "clip_job"


# -- declarative automation ------------------------------------------------------------------------------------


def test_post_processing_follows_generation_and_nothing_paid_starts_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "auto", n_shots=2, duration=1)
    env = {"SHOTLINE_STORYBOARDS": str(root), "SHOTLINE_HOME": str(tmp_path / "home")}
    defs = build_definitions(Settings.from_env(env))

    def requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, set[str]]:
        return {
            r.key.to_user_string(): set(r.true_subset.expensively_compute_partition_keys())
            for r in result.results
            if r.true_subset.size
        }

    with dg.instance_for_test() as instance:
        with set_defs_state_storage(instance.defs_state_storage):  # as in tick()
            graph = defs.resolve_asset_graph()
        automated = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
        assert automated == {"final_clip", "published_clip"}  # generation is never automated
        instance.add_dynamic_partitions("shots", ["auto__s01", "auto__s02"])
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert requested(result) == {}  # new shots are missing upstream: nothing starts on its own

        job = defs.resolve_job_def("clip_job")
        assert job.execute_in_process(partition_key="auto__s01", instance=instance, run_config=QUIET).success
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert requested(result) == {}  # the whole chain ran together: nothing left to follow

        raw_only = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("raw_clip")})
        assert raw_only.execute_in_process(partition_key="auto__s01", instance=instance, run_config=QUIET).success
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert requested(result) == {"final_clip": {"auto__s01"}, "published_clip": {"auto__s01"}}
