"""raw_clip through Dagster (in-process, a real instance) against the fake fal server over HTTP: the request
as an AssetObservation, fal's queue position and log lines in the run's log, what the video is and cost in
the materialization, the cache, and which failures cost money."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.resources import GeneratorResource
from pipelines.definitions import build_definitions, build_resources
from shotline.config import Settings
from shotline.db import open_database
from shotline.db.engine import sqlite_url
from shotline.fal.errors import FalDeadlineExceeded
from shotline.fal.generator import FalGenerator
from shotline.fal.ledger import REJECTED_ERROR_TYPE, LedgerState, RequestLedger
from shotline.store import WorkStore
from testkit.fakes.fal_server import CONTENT_POLICY_MSG, DEFAULT_LOG_LINES, FakeFal
from testkit.storyboard_factory import tiny_storyboard
from tests.integration.test_fal_generator import Log, make_request

RAW_CHAIN = [dg.AssetKey(a) for a in ("source_image", "clip_prompt", "raw_clip")]


@pytest.fixture
def env(tmp_path: Path, fake_fal: FakeFal, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("FAL_KEY", fake_fal.key)  # the resource reads it through an EnvVar at run time
    tiny_storyboard(tmp_path / "storyboards", n_shots=1, duration=2, resolution="480p")
    return {
        "FAL_KEY": fake_fal.key,
        "SHOTLINE_FAL_QUEUE_URL": fake_fal.url,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(tmp_path / "storyboards"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.01",
        "SHOTLINE_FAL_MAX_POLL_INTERVAL_S": "0.02",
        "SHOTLINE_FAL_DEADLINE_S": "120",
        "SHOTLINE_FAL_QUEUE_TIMEOUT_S": "90",
    }


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def run_raw_clip(env: Mapping[str, str], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """clip_job, up to raw_clip, for the tiny storyboard's only shot."""
    if not instance.has_dynamic_partition("shots", "tiny__s01"):
        instance.add_dynamic_partitions("shots", ["tiny__s01"])
    job = build_definitions(Settings.from_env(env)).resolve_job_def("clip_job")
    return job.execute_in_process(
        partition_key="tiny__s01", instance=instance, asset_selection=RAW_CHAIN, raise_on_error=False
    )


def observations(instance: dg.DagsterInstance) -> list[dict[str, Any]]:
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_clip"), asset_partitions=["tiny__s01"]), limit=50
    ).records
    found = []
    for record in reversed(records):  # oldest first
        observation = record.asset_observation
        assert observation is not None and observation.partition == "tiny__s01"
        found.append({k: v.value for k, v in observation.metadata.items()})
    return found


def raw_clip_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node("raw_clip")
    return {k: v.value for k, v in materialization.metadata.items()}


def test_a_fal_clip_through_dagster_records_request_logs_checks_and_cost(
    env: dict[str, str], instance: dg.DagsterInstance, fake_fal: FakeFal
) -> None:
    result = run_raw_clip(env, instance)
    assert result.success

    # the request, as observations of the partition, written as the ledger was
    seen = observations(instance)
    assert [o["fal_state"] for o in seen] == ["submitting", "submitted", "completed"]
    submitted = seen[1]
    [job] = fake_fal.jobs.values()
    assert submitted["fal_request_id"] == job.request_id
    for name in ("status_url", "response_url", "cancel_url"):
        assert submitted[name].startswith(f"{fake_fal.url}/xai/grok-imagine-video/requests/{job.request_id}")
    assert submitted["parameters"]["duration"] == 2 and submitted["parameters"]["resolution"] == "480p"
    assert submitted["parameters"]["image_source"] == "data-uri" and "image_url" not in submitted["parameters"]
    assert submitted["estimated_cost_usd"] == 0.17 and submitted["submitted_at"]
    assert submitted["start_timeout_s"] == 90.0
    assert seen[2]["billed"] is True and seen[2]["cost_usd"] == 0.17
    [submit] = fake_fal.submits
    assert submit.headers["x-fal-request-timeout"] == "90"

    # fal's queue position and log lines, once each, in the run's log
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert sum("in queue, position 1" in m for m in messages) == 1
    for line in DEFAULT_LOG_LINES:
        assert sum(m.endswith(f": {line}") for m in messages) == 1, line

    # what the video is and what it cost
    md = raw_clip_metadata(result)
    assert md["fal_request_id"] == job.request_id and md["cache_hit"] is False and md["size_bytes"] > 0
    assert md["cost_usd"] == 0.17 and md["inference_time_s"] == pytest.approx(3.42)
    assert (md["width"], md["height"], md["num_frames"], md["has_audio"]) == (854, 480, 49, True)
    assert md["duration_s"] == pytest.approx(2.041667) and md["timings"]["inference_s"] == pytest.approx(3.42)

    # no secret anywhere in the run's events
    assert not [e for e in instance.all_logs(result.run_id) if fake_fal.key in repr(e)]

    # unchanged inputs: no HTTP call at all, $0, the original request id kept
    before = len(fake_fal.requests)
    again = run_raw_clip(env, instance)
    assert again.success and len(fake_fal.requests) == before
    md2 = raw_clip_metadata(again)
    assert md2["cache_hit"] is True and md2["cost_usd"] == 0.0 and md2["original_cost_usd"] == 0.17
    assert md2["fal_request_id"] == job.request_id
    assert len(observations(instance)) == 3


def failure_description(result: dg.ExecuteInProcessResult) -> str | None:
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else None


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data
    assert data.user_failure_data is not None, data.error
    return {k: v.value for k, v in data.user_failure_data.metadata.items()}


@pytest.mark.parametrize("fault", ["content_policy", "silent_video"])
def test_a_paid_failure_stops_at_once_and_says_it_cost_money(
    env: dict[str, str], instance: dg.DagsterInstance, fake_fal: FakeFal, fault: str
) -> None:
    if fault == "content_policy":
        fake_fal.content_policy()
        error_type, words = "content_policy_violation", CONTENT_POLICY_MSG
    else:
        fake_fal.render_audio = False
        error_type, words = REJECTED_ERROR_TYPE, "it has no audio track"
    result = run_raw_clip(env, instance)
    assert not result.success
    [job] = fake_fal.jobs.values()
    metadata = failure_metadata(result)
    # a 422 may have been billed, a video that fails the checks was: both count as money spent
    assert metadata["billed"] is True and metadata["fal_request_id"] == job.request_id
    failed = observations(instance)[-1]
    assert failed["fal_state"] == "failed" and failed["cost_usd"] == 0.17
    if fault == "content_policy":  # "possibly billed" (None) is left out of the public view
        assert failed["outcome"] == "input_error" and failed["billed"] == "possibly"
    else:
        assert failed["outcome"] == REJECTED_ERROR_TYPE and failed["billed"] is True
    assert failed["error_type"] == error_type and words in failed["error"]
    assert failed["fal_request_id"] == job.request_id  # the observation is the partition's: it names the request
    description = str(failure_description(result))  # the failure names the shot, quotes fal, says what to do
    assert "storyboard 'tiny', shot 's01'" in description and words in description
    assert job.request_id in description and "shotline resubmit tiny/s01" in description
    assert len(fake_fal.submits) == 1  # not retried: the same input would be paid for and fail again

    assert not run_raw_clip(env, instance).success  # a rerun refuses instead of paying again
    assert len(fake_fal.submits) == 1


def test_the_timing_settings_come_from_the_environment_and_reach_fal(
    env: dict[str, str], fake_fal: FakeFal, tmp_path: Path
) -> None:
    resource = build_resources(Settings.from_env({**env, "SHOTLINE_FAL_DEADLINE_S": "0.3"}))["generator"]
    assert isinstance(resource, GeneratorResource)
    assert (resource.deadline_s, resource.queue_timeout_s) == (0.3, 90.0)
    assert (resource.poll_interval_s, resource.max_poll_interval_s) == (0.01, 0.02)
    defaults = build_resources(Settings.from_env({k: v for k, v in env.items() if "_S" not in k[-3:]}))["generator"]
    assert isinstance(defaults, GeneratorResource) and defaults.deadline_s == 1800.0

    # and so do fal's storage, CDN and platform hosts
    assert (resource.fal_rest_url, resource.fal_cdn_url, resource.fal_api_url) == (
        fake_fal.rest_url,
        fake_fal.cdn_url,
        fake_fal.api_url,
    )

    store = WorkStore(tmp_path / "home")
    db = open_database(sqlite_url(tmp_path / "home"))
    generator = resource.model_copy(update={"fal_key": fake_fal.key}).build(store, db)
    assert isinstance(generator, FalGenerator) and generator.queue_timeout_s == 90.0
    assert generator.uploads is not None and generator.max_attempts == 3
    fake_fal.queue_polls = 10**6  # never leaves the queue
    request = make_request(tmp_path)
    with pytest.raises(FalDeadlineExceeded, match=r"the per-clip deadline of 0\.3 s passed"):
        generator.generate(request, tmp_path / "work", Log())
    assert len(fake_fal.seen("status")) > 5  # polled every 10-20 ms until the deadline
    assert len(fake_fal.cancels) == 1
    # fal accepted the cancel: requested, not proven, until a run sees how the request ended
    assert RequestLedger(db).get(request.clip_key).state == LedgerState.CANCEL_REQUESTED  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_a_bad_timing_setting_names_its_variable(value: str) -> None:
    with pytest.raises(ValueError, match=f"SHOTLINE_FAL_POLL_INTERVAL_S must be a positive number.*{value}"):
        Settings.from_env({"SHOTLINE_FAL_POLL_INTERVAL_S": value})
