"""Sensors: one registers shots and storyboards and runs what is new or changed; one cuts reels once every
shot of a storyboard is published."""

from __future__ import annotations

import json

import dagster as dg

from assets.partitions import shots, storyboards
from assets.resources import WorkspaceResource
from assets.upstream import latest_metadata_or_none
from pipelines.jobs import clip_job, reel_job
from pipelines.operating import OperatingSettings
from shotline import catalog
from shotline.hashing import stable_hash
from shotline.storyboard import partition_key

# SHOTLINE_SENSOR_INTERVAL_S, read when the code location loads (pipelines/operating.py)
SENSOR_INTERVAL_S = OperatingSettings.from_env().sensor_interval_s


@dg.sensor(
    job=clip_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the storyboards location: adds a partition per new shot and storyboard, and runs "
    "clip_job for every shot that is new or whose resolved spec (image, prompt, vars, settings) changed. "
    "With SHOTLINE_AUTORUN=0 it only registers them: runs then come from UI backfills and the schedules.",
)
def storyboard_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
    found = catalog.scan(workspace.storyboards_root())
    for error in found.errors:
        context.log.error(f"storyboard skipped: {error}")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    specs = found.shot_specs()
    known_shots = set(context.instance.get_dynamic_partitions(shots.name))
    known_boards = set(context.instance.get_dynamic_partitions(storyboards.name))
    new_shots = [key for key in specs if key not in known_shots]
    new_boards = [sb.id for sb in found.storyboards if sb.id not in known_boards]
    run_requests = [
        dg.RunRequest(partition_key=key, run_key=f"{key}@{spec[:16]}", tags={"shotline/spec": spec[:16]})
        for key, spec in specs.items()
        if seen.get(key) != spec
    ]
    if not OperatingSettings.from_env().autorun:
        run_requests = []
    requests = []
    if new_shots:
        requests.append(shots.build_add_request(new_shots))
    if new_boards:
        requests.append(storyboards.build_add_request(new_boards))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=requests,
        cursor=json.dumps({**seen, **specs}, sort_keys=True),
    )


@dg.sensor(
    job=reel_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs reel_job for a storyboard once every one of its shots is published, and again whenever "
    "one of its published clips changes.",
)
def reel_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult | dg.SkipReason:
    found = catalog.scan(workspace.storyboards_root())
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known_boards = set(context.instance.get_dynamic_partitions(storyboards.name))
    run_requests = []
    for sb in found.storyboards:
        if sb.id not in known_boards:
            continue
        versions = []
        for shot in sb.shots:
            published = latest_metadata_or_none(context.instance, "published_clip", partition_key(sb.id, shot.id))
            if published is None:
                break
            versions.append(published["sha256"])
        else:
            cut = stable_hash({"clips": versions, "reel": sb.reel.model_dump()})
            if seen.get(sb.id) != cut:
                seen[sb.id] = cut
                run_requests.append(dg.RunRequest(partition_key=sb.id, run_key=f"{sb.id}@{cut[:16]}"))
    if not run_requests:
        return dg.SkipReason("no storyboard has a complete, changed set of published clips")
    return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(seen, sort_keys=True))
