"""The data engineer's backfill, end to end as the UI does it: `dagster dev` (webserver, daemon, code server) on
loopback with the development profile, the fake fal server, and storyboards on disk. The sensor registers the
shots, a backfill of every shot is launched with the GraphQL mutation the UI's partition dialog sends, and
every shot gets published; then a backfill whose generations hang is cancelled from the Backfills tab's
mutation: fal is asked to cancel its requests (PUT cancel), its runs end cancelled and its pool slots come
back. fal's app ignores a cancel once a request runs (as the fake does by default, reference §15.1), so the
requests stay `cancel_requested` in the ledger; a backfill of the same shots later follows them to their end
and publishes their videos without paying for new requests. At the end no process of the service's tree is
left.

Slow by nature (the backfill daemon ticks every 30 s), so it is marked `slow`; it still runs in `make test`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from assets.upstream import latest_metadata_or_none
from shotline.db import open_database
from shotline.db.engine import sqlite_url
from shotline.fal.ledger import LedgerState, RequestLedger
from testkit.dagster_ui import (
    DagsterDev,
    dagster_cli,
    dev_instance_yaml,
    processes_in_session,
    run_failures,
    wait_for,
)
from testkit.fakes.fal_server import TEST_KEY, FakeFal
from testkit.storyboard_factory import write_storyboard

FAL_POOL = 4
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
TERMINAL_RUN = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def storyboard(root: Path, storyboard_id: str, subjects: list[str]) -> list[str]:
    shots = [
        {
            "id": f"s{i:02d}",
            "image": f"images/s{i:02d}.png",
            "prompt": "slow push-in on {{ subject }}",
            "vars": {"subject": subject},
        }
        for i, subject in enumerate(subjects, 1)
    ]
    data = {"id": storyboard_id, "defaults": {"duration": 1, "resolution": "480p", "fade": 0.1}, "shots": shots}
    write_storyboard(root, data, images={s["image"]: (640, 360) for s in shots})
    return [f"{storyboard_id}__{s['id']}" for s in shots]


def clip_key_of(instance: dg.DagsterInstance, partition_key: str) -> str:
    """The clip key raw_clip generated (or is generating) the shot under, from its ledger observations."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_clip"), asset_partitions=[partition_key]), limit=1
    ).records
    assert records and records[0].asset_observation is not None, f"no ledger observation for {partition_key}"
    return str(records[0].asset_observation.metadata["clip_key"].value)


def published(instance: dg.DagsterInstance, keys: list[str]) -> bool:
    return all(latest_metadata_or_none(instance, "published_clip", k) is not None for k in keys)


@pytest.mark.slow
def test_ui_backfill_publishes_every_shot_and_a_cancelled_one_frees_fal_and_the_pool(
    fake_fal: FakeFal, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # the development profile as `make dev` uses it; the queue is checked every second instead of every 5
    (home / "dagster.yaml").write_text(
        dev_instance_yaml({"run_coordinator": {"config": {"dequeue_interval_seconds": 1}}})
    )
    root, work, out = tmp_path / "storyboards", tmp_path / "work", tmp_path / "published"
    good = storyboard(root, "good", ["a lighthouse", "a fishing boat", "a gull"])
    bad = storyboard(root, "bad", ["a storm", "a wreck"])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SHOTLINE_", "FAL_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "FAL_KEY": TEST_KEY,
        "SHOTLINE_GENERATOR": "fal",
        "SHOTLINE_FAL_QUEUE_URL": fake_fal.url,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.1",
        "SHOTLINE_FAL_MAX_POLL_INTERVAL_S": "0.5",
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_HOME": str(work),
        "SHOTLINE_PUBLISH_URI": str(out),
        "SHOTLINE_SENSOR_INTERVAL_S": "5",
        "SHOTLINE_AUTORUN": "0",  # the sensor registers, the backfill runs
    }
    dagster_cli("instance", "concurrency", "set", "fal", str(FAL_POOL), env=env)  # what `make dev` does

    service = DagsterDev(env, tmp_path / "dagster-dev.log")
    try:
        service.start()
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            wait_for(
                lambda: set(good + bad) <= set(instance.get_dynamic_partitions("shots")),
                90,
                "storyboard_sensor to register the shots",
            )
            assert fake_fal.submits == []  # registering spends nothing

            # -- a backfill of every shot of `good`, as the UI launches it -----------------------------------
            first = service.launch_backfill(good, title="good: all shots")
            wait_for(
                lambda: published(instance, good),
                240,
                "every shot of the backfill to be published",
                explain=lambda: run_failures(instance, first),
            )
            assert len(fake_fal.submits) == len(good)  # one paid request per shot
            for key in good:
                shot = key.split("__")[1]
                latest = json.loads((out / "good" / shot / "latest.json").read_text())
                assert (out / "good" / shot / f"{latest['sha256'][:12]}.mp4").is_file()
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": first}))
            assert sorted(r.tags["dagster/partition"] for r in runs) == good  # one run per shot

            # -- a backfill whose generations never finish, cancelled from the Backfills tab --------------------
            fake_fal.progress_polls = 10**9
            second = service.launch_backfill(bad, title="bad: cancel me")
            assert (
                wait_for(
                    lambda: (s := service.backfill_status(first)) in FINISHED and s, 120, "the backfill to complete"
                )
                == "COMPLETED_SUCCESS"
            )
            assert all(
                r.status == dg.DagsterRunStatus.SUCCESS
                for r in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": first}))
            )
            wait_for(
                lambda: len(fake_fal.submits) == len(good) + len(bad),
                150,
                "the bad shots to be submitted",
                explain=lambda: run_failures(instance, second),
            )
            in_flight = {job.request_id for job in fake_fal.jobs.values() if not job.completed}
            assert len(in_flight) == len(bad)
            wait_for(lambda: all(fake_fal.job(r).polls > 0 for r in in_flight), 60, "the bad requests to be polled")
            info = instance.event_log_storage.get_concurrency_info("fal")
            assert info.active_slot_count == len(bad)  # each in-flight generation holds a pool slot

            service.cancel_backfill(second)
            wait_for(lambda: {c.request_id for c in fake_fal.cancels} >= in_flight, 120, "fal to be told to cancel")
            runs = wait_for(
                lambda: (
                    (rs := instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": second})))
                    and all(r.status in TERMINAL_RUN for r in rs)
                    and rs
                ),
                120,
                "the cancelled runs to end",
            )
            assert {r.status for r in runs} == {dg.DagsterRunStatus.CANCELED}
            # fal accepted the cancels, but the running requests go on (and will be billed): the ledger keeps
            # them open, reserved against the budget, for the next run to follow
            assert fake_fal.cancel_mode == "ignore" and not any(fake_fal.job(r).cancelled for r in in_flight)
            ledger = RequestLedger(open_database(sqlite_url(work)))
            entries = [e for key in bad if (e := ledger.get(clip_key_of(instance, key))) is not None]
            assert {e.request_id for e in entries} == in_flight
            assert [e.state for e in entries] == [LedgerState.CANCEL_REQUESTED] * len(bad)
            freed = wait_for(
                lambda: (
                    (i := instance.event_log_storage.get_concurrency_info("fal")).active_slot_count == 0
                    and not i.pending_steps
                    and i
                ),
                60,
                "the pool slots to be freed",
            )
            assert freed.slot_count == FAL_POOL
            assert not published(instance, bad[:1]) and not published(instance, bad[1:])
            assert (
                wait_for(
                    lambda: (s := service.backfill_status(second)) in FINISHED and s, 90, "the backfill to be cancelled"
                )
                == "CANCELED"
            )

            # -- the same shots again: their requests, still running on fal, are followed, not paid for twice ---
            for request_id in in_flight:
                fake_fal.job(request_id).progress_polls = 0  # they finish at the next look
            third = service.launch_backfill(bad, title="bad: again")
            wait_for(
                lambda: published(instance, bad),
                240,
                "the bad shots to be published from their first requests",
                explain=lambda: run_failures(instance, third),
            )
            assert len(fake_fal.submits) == len(good) + len(bad)  # no new paid request
            for key in bad:
                [entry] = ledger.attempts(clip_key_of(instance, key))
                assert entry.request_id in in_flight and entry.state == LedgerState.COMPLETED and entry.billed
                raw = latest_metadata_or_none(instance, "raw_clip", key)
                assert raw is not None and raw["fal_request_id"] == entry.request_id
            assert set(fake_fal.billed_request_ids) == {j.request_id for j in fake_fal.jobs.values()}
    finally:
        service.stop()
    assert service.proc is not None
    assert processes_in_session(service.proc.pid) == [], "processes of dagster dev outlived it"
