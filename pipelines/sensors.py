"""Sensors: one registers shots and storyboards and runs what is new or changed; one cuts reels once every
shot of a storyboard is published. Built by `build_sensors` from the operating settings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dagster as dg

from assets.partitions import shots, storyboards
from assets.resources import WorkspaceResource
from assets.upstream import latest_metadata_by_partition
from pipelines.jobs import clip_job, reel_job
from pipelines.retention import archived_storyboards
from pipelines.sensor_state import SensorState
from shotline.errors import StoryboardError
from shotline.hashing import stable_hash
from shotline.operating import OperatingSettings
from shotline.storyboard import PARTITION_SEPARATOR, STORYBOARD_FILE, load_storyboard
from shotline.storyboard_changes import BoardFiles, look, storyboard_folders

# most seconds a tick spends reading storyboards (a first tick over a large catalogue takes several ticks)
READ_BUDGET_S = 20.0
SPEC_TAG = "shotline/spec"  # on every clip_job run storyboard_sensor (and the nightly sweep) requests


def build_sensors(settings: OperatingSettings) -> list[dg.SensorDefinition]:
    """storyboard_sensor and reel_sensor, ticking every SHOTLINE_SENSOR_INTERVAL_S; storyboard_sensor runs what
    changed only with SHOTLINE_AUTORUN."""

    @dg.sensor(
        name="storyboard_sensor",
        job=clip_job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds a partition for every new shot and storyboard and runs clip_job for each shot whose "
        "published clip is not of its current spec, reading only the storyboards whose files changed.",
    )
    def storyboard_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
        return storyboard_tick(context, workspace, autorun=settings.autorun)

    @dg.sensor(
        name="reel_sensor",
        job=reel_job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs reel_job for a storyboard once every one of its shots is published, and again whenever "
        "one of its published clips or its reel settings change.",
    )
    def reel_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
        return reel_tick(context, workspace)

    return [storyboard_sensor, reel_sensor]


def storyboard_tick(
    context: dg.SensorEvaluationContext, workspace: WorkspaceResource, *, autorun: bool
) -> dg.SensorResult:
    """One tick of storyboard_sensor. A look at the storyboards' files (sizes and times,
    shotline.storyboard_changes) tells which changed since the last tick; only those are read again. A shot
    runs when its spec differs from the one its latest published clip was made for (`spec_sha256`); the run
    key names both, so Dagster launches each such change once, and going back to an earlier spec runs again.
    Without `autorun` (SHOTLINE_AUTORUN=0) shots are only registered: a storyboard with shots left to run is
    marked pending and read again once autorun is back on, so what changed meanwhile still runs. Archived
    storyboards are skipped."""
    instance = context.instance
    state = SensorState(instance, "storyboard_sensor", context.cursor)
    before: dict[str, dict[str, Any]] = state.load().get("storyboards", {})
    archived = archived_storyboards(instance)
    root = workspace.storyboards_root()
    known = {name: files for name, board in before.items() if (files := BoardFiles.from_json(board.get("files", {})))}
    found = look(root, known, skip=archived, sweep_from=state.extra.get("sweep"))
    now = {name: {**before.get(name, {}), "files": files.as_json()} for name, files in found.boards.items()}
    to_read = set(found.changed)
    if autorun:
        to_read |= {name for name, board in now.items() if board.get("pending")}
    registered = _Registered(instance)
    started = time.monotonic()
    new_shots: list[str] = []
    new_boards: list[str] = []
    run_requests: list[dg.RunRequest] = []
    for name in sorted(to_read):
        if time.monotonic() - started > READ_BUDGET_S:
            # the rest are read at the next ticks: forget what this look found of them, so they still count
            # as changed (a tick must end well within Dagster's sensor timeout)
            now[name] = before.get(name, {})
            continue
        try:
            storyboard = load_storyboard(root / name)
        except StoryboardError as error:
            context.log.error(f"storyboard skipped: {error}")
            now[name]["pending"] = False
            continue
        keys = [shot.partition_key for shot in storyboard.shots]
        listed = stable_hash(keys)[:16]
        if now[name].get("shots") != listed:  # its shots as registered at the last read: look only when they differ
            if not registered.storyboard(storyboard.id):
                new_boards.append(storyboard.id)
            new_shots.extend(key for key in keys if not registered.shot(key))
            now[name]["shots"] = listed
        published = latest_metadata_by_partition(instance, "published_clip", keys)
        stale = []
        for shot in storyboard.shots:
            spec = storyboard.shot_spec_hash(shot)
            made_for = published.get(shot.partition_key, {}).get("spec_sha256")
            if spec != made_for:
                stale.append(_run_request(shot.partition_key, spec, made_for))
        now[name]["pending"] = bool(stale) and not autorun
        if autorun:
            run_requests.extend(stale)
    requests = []
    if new_shots:
        requests.append(shots.build_add_request(new_shots))
    if new_boards:
        requests.append(storyboards.build_add_request(new_boards))
    now = {name: board for name, board in now.items() if board}
    unchanged = now == before and state.generation > 0
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=requests,
        cursor=state.cursor(sweep=found.sweep_next)
        if unchanged
        else state.commit({"storyboards": now}, sweep=found.sweep_next),
    )


class _Registered:
    """Whether a partition exists: one query per key for a few, one query for them all past that (a first
    tick over a large catalogue)."""

    ONE_BY_ONE = 200

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._asked = 0
        self._shots: set[str] | None = None

    def storyboard(self, storyboard_id: str) -> bool:
        return self._instance.has_dynamic_partition(storyboards.name, storyboard_id)

    def shot(self, key: str) -> bool:
        if self._shots is None:
            self._asked += 1
            if self._asked <= self.ONE_BY_ONE:
                return self._instance.has_dynamic_partition(shots.name, key)
            self._shots = set(self._instance.get_dynamic_partitions(shots.name))
        return key in self._shots


def _run_request(key: str, spec: str, published: str | None) -> dg.RunRequest:
    """clip_job for the shot; the run key is the spec, and the spec of the clip it replaces when there is one."""
    run_key = f"{key}@{spec[:16]}" + (f"~{published[:16]}" if published else "")
    return dg.RunRequest(partition_key=key, run_key=run_key, tags={SPEC_TAG: spec[:16]})


def reel_tick(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
    """One tick of reel_sensor. Looks only at the storyboards with a published clip newer than the last tick's
    (the event log, read after a storage id) or whose storyboard file changed; the first tick looks at every
    one (over several ticks if need be: what is left is kept for the next). Archived storyboards are skipped."""
    instance = context.instance
    state = SensorState(instance, "reel_sensor", context.cursor)
    before = state.load()
    cuts: dict[str, str] = before.get("cuts", {})
    files: dict[str, str] = before.get("files", {})
    after, touched = _published_since(instance, state.extra.get("after"))
    archived = archived_storyboards(instance)
    root = workspace.storyboards_root()
    now_files = {name: _file_stamp(folder) for name, folder in storyboard_folders(root).items() if name not in archived}
    if state.generation == 0:
        touched = set(now_files)
    touched |= set(before.get("todo", []))
    touched |= {name for name, stamp in now_files.items() if files.get(name) != stamp}
    # an archived storyboard keeps its entries, so that its restore recuts nothing
    now_files |= {name: stamp for name, stamp in files.items() if name in archived}
    new_cuts = {name: cut for name, cut in cuts.items() if name in now_files}
    run_requests, todo, started = [], [], time.monotonic()
    for name in sorted(touched & set(now_files) - archived):
        if time.monotonic() - started > READ_BUDGET_S:
            todo.append(name)
            continue
        if not instance.has_dynamic_partition(storyboards.name, name):
            continue
        try:
            sb = load_storyboard(root / name)
        except StoryboardError:
            continue  # storyboard_sensor reports it
        versions = []
        published = latest_metadata_by_partition(instance, "published_clip", [s.partition_key for s in sb.shots])
        for shot in sb.shots:
            if shot.partition_key not in published:
                break
            versions.append(published[shot.partition_key]["sha256"])
        else:
            cut = stable_hash({"clips": versions, "reel": sb.reel.model_dump()})[:16]
            if cuts.get(sb.id) != cut:
                new_cuts[sb.id] = cut
                # the cut it replaces is in the run key, so that going back to an earlier cut runs again
                run_key = f"{sb.id}@{cut}" + (f"~{cuts[sb.id]}" if sb.id in cuts else "")
                run_requests.append(dg.RunRequest(partition_key=sb.id, run_key=run_key))
    now = {"cuts": new_cuts, "files": now_files, "todo": todo}
    if now == before and after == state.extra.get("after") and state.generation > 0:
        cursor = state.cursor()
    elif now == before and state.generation > 0:
        cursor = state.cursor(after=after)
    else:
        cursor = state.commit(now, after=after)
    if not run_requests:
        return dg.SensorResult(
            cursor=cursor, skip_reason="no storyboard has a complete, changed set of published clips"
        )
    return dg.SensorResult(run_requests=run_requests, cursor=cursor)


def _published_since(instance: dg.DagsterInstance, after: int | None) -> tuple[int, set[str]]:
    """The storage id of the newest published_clip materialization, and the storyboards of those after `after`."""
    key = dg.AssetKey("published_clip")
    if after is None:  # a first tick looks at every storyboard: only where the event log ends matters
        latest = instance.fetch_materializations(key, limit=1).records
        return (latest[0].storage_id if latest else 0), set()
    touched: set[str] = set()
    cursor = None
    newest = after
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after),
            limit=500,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            newest = max(newest, record.storage_id)
            if record.partition_key:
                touched.add(record.partition_key.partition(PARTITION_SEPARATOR)[0])
        if not page.has_more:
            return newest, touched
        cursor = page.cursor


def _file_stamp(folder: Path) -> str:
    """The storyboard file's size and time: its reel settings and shot order live there."""
    try:
        st = (folder / STORYBOARD_FILE).stat()
    except FileNotFoundError:
        return ""
    return f"{st.st_size}-{st.st_mtime_ns}"
