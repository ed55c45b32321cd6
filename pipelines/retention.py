"""Partition retention: a finished storyboard's partitions leave the Dagster instance, and can come back.

Dagster's UI slows down past a few tens of thousands of partitions of one asset, and production adds thousands
of shots a day. A storyboard whose every shot and reel is published, with its manifests and its ledger, needs
its partitions no more: what it was stays in the published manifests and ledger, and its runs and
materializations stay in the event log (deleting a partition key deletes no history). `archive` checks all
that, then deletes the storyboard's keys from `shots` and `storyboards`; `restore` adds them back, and the UI
shows their history again. With SHOTLINE_ARCHIVE_AFTER_DAYS set, `archive_sensor` archives the storyboards
untouched for that long (off by default). The sensors skip archived storyboards, so a storyboard folder left
in place is not registered again.

Where the archived state lives: in the Dagster instance, beside the partitions it is about. An archived
storyboard is a key of the dynamic partition set `archived_storyboards` (one query tells the sensors which to
skip), and its archive record (the shot keys removed, the manifests, reel and ledger it was checked against) is
a value in the instance's key-value store. The shotline database would be the wrong place: it is shared by
every deployment that points at it (a staging and a production instance may share one), whereas partitions
belong to one instance; and keeping both in the instance means no state of one store can disagree with the
other.
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import dagster as dg
from pydantic import BaseModel

from assets.partitions import shots, storyboards
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import latest_materialization, latest_record
from shotline.config import Settings
from shotline.errors import ShotlineError, StoryboardError
from shotline.operating import OperatingSettings
from shotline.publish import PublishedClip, Publisher, verify_published
from shotline.stage_records import ProductionLedgerRecord, PublishedClipRecord, ReelRecord
from shotline.storyboard import PARTITION_SEPARATOR, Storyboard, load_storyboard

ARCHIVED = dg.DynamicPartitionsDefinition(name="archived_storyboards")
ARCHIVE_AFTER_DAYS = "SHOTLINE_ARCHIVE_AFTER_DAYS"
_RECORD_PREFIX = "shotline/archive/"
R = TypeVar("R")
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class ArchiveRefused(ShotlineError):
    """The storyboard cannot be archived (or restored); the message lists every reason."""


class ArchiveRecord(BaseModel):
    """What was archived, and what it was checked against."""

    storyboard_id: str
    shots: list[str]  # the partition keys removed from `shots`
    manifests: dict[str, str]  # shot partition key -> its published clip's manifest URI
    reel_manifest_uri: str
    ledger_uri: str
    archived_at: str
    archived_by: str
    restored_at: str | None = None


def archived_storyboards(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(ARCHIVED.name))


def archive_record(instance: dg.DagsterInstance, storyboard_id: str) -> ArchiveRecord | None:
    key = _RECORD_PREFIX + storyboard_id
    raw = instance.run_storage.get_cursor_values({key}).get(key)
    return ArchiveRecord.model_validate_json(raw) if raw else None


def check_archivable(
    instance: dg.DagsterInstance, workspace: WorkspaceResource, publisher: Publisher, storyboard_id: str
) -> ArchiveRecord:
    """The record archiving `storyboard_id` would write; ArchiveRefused naming every shot, reel or ledger that
    is not published, current and intact, and every run still in flight."""
    store = workspace.store()
    problems: list[str] = []
    storyboard = _storyboard_or_none(workspace, storyboard_id, problems)
    prefix = storyboard_id + PARTITION_SEPARATOR
    keys = sorted(
        {k for k in instance.get_dynamic_partitions(shots.name) if k.startswith(prefix)}
        | {shot.partition_key for shot in (storyboard.shots if storyboard else [])}
    )
    if not keys:
        problems.append("it has no shot partition")
    manifests: dict[str, str] = {}
    published: dict[str, str] = {}  # shot id -> sha256 of its published clip
    for key in keys:
        record = _read(lambda k=key: latest_record(instance, store, PublishedClipRecord, k), key, problems)
        if record is None:
            continue
        shot_id = key.removeprefix(prefix)
        current = {s.id: s for s in storyboard.shots} if storyboard else {}
        if storyboard and shot_id in current and record.spec_sha256 != storyboard.shot_spec_hash(current[shot_id]):
            problems.append(f"{key}: the storyboard changed since its clip was published (stale): run it first")
        problems.extend(f"{key}: {p}" for p in _intact(publisher, record.published))
        manifests[key] = record.published.manifest.uri
        published[shot_id] = record.published.sha256
    reel = _read(lambda: latest_record(instance, store, ReelRecord, storyboard_id), "the reel", problems)
    if reel is not None:
        problems.extend(f"the reel: {p}" for p in _intact(publisher, reel.published))
        cut = {clip.shot_id: clip.sha256 for clip in reel.clips}
        if published and cut != published:
            differ = sorted(s for s in set(cut) | set(published) if cut.get(s) != published.get(s))
            problems.append(f"the reel: not cut from the published clips of {', '.join(differ)}: run reel_job first")
    ledger = _read(
        lambda: latest_record(instance, store, ProductionLedgerRecord, storyboard_id), "the ledger", problems
    )
    if ledger is not None:
        rows = {row.shot_id: row for row in ledger.ledger.rows}
        behind = sorted(s for s, sha in published.items() if s not in rows or rows[s].sha256 != sha)
        if behind:
            problems.append(f"the ledger: does not show the published clips of {', '.join(behind)}: run reel_job")
        for label, document in (("ledger.json", ledger.json_document), ("ledger.csv", ledger.csv_document)):
            check = publisher.verify_object(publisher.key_for(document.uri), document.sha256, document.size)
            if check.problem:
                problems.append(f"the ledger: {label}: {check.problem}")
    running = _in_flight(instance, [*keys, storyboard_id])
    if running:
        problems.append(f"runs still in flight for {', '.join(running)}: wait for them or cancel them")
    if problems:
        raise ArchiveRefused(f"storyboard {storyboard_id!r} cannot be archived:\n  - " + "\n  - ".join(problems))
    assert reel is not None and ledger is not None
    return ArchiveRecord(
        storyboard_id=storyboard_id,
        shots=keys,
        manifests=manifests,
        reel_manifest_uri=reel.published.manifest.uri,
        ledger_uri=ledger.json_document.uri,
        archived_at=datetime.now(UTC).isoformat(timespec="seconds"),
        archived_by=_who(),
    )


def archive(
    instance: dg.DagsterInstance, workspace: WorkspaceResource, publisher: Publisher, storyboard_id: str
) -> ArchiveRecord:
    """Check, then archive: the record and the archived mark first (so no sensor registers the storyboard
    again while its keys go), then the keys. Archiving an archived storyboard finishes what was left."""
    if storyboard_id in archived_storyboards(instance):
        record = archive_record(instance, storyboard_id)
        if record is None:
            raise ArchiveRefused(f"storyboard {storyboard_id!r} is marked archived but has no archive record")
    else:
        record = check_archivable(instance, workspace, publisher, storyboard_id)
        _save(instance, record)
        instance.add_dynamic_partitions(ARCHIVED.name, [storyboard_id])
    for key in record.shots:
        if instance.has_dynamic_partition(shots.name, key):
            instance.delete_dynamic_partition(shots.name, key)
    if instance.has_dynamic_partition(storyboards.name, storyboard_id):
        instance.delete_dynamic_partition(storyboards.name, storyboard_id)
    return record


def restore(instance: dg.DagsterInstance, storyboard_id: str) -> ArchiveRecord:
    """Put an archived storyboard's partitions back, then lift the archived mark."""
    record = archive_record(instance, storyboard_id)
    if record is None or storyboard_id not in archived_storyboards(instance):
        raise ArchiveRefused(f"storyboard {storyboard_id!r} is not archived")
    missing = [k for k in record.shots if not instance.has_dynamic_partition(shots.name, k)]
    if missing:
        instance.add_dynamic_partitions(shots.name, missing)
    if not instance.has_dynamic_partition(storyboards.name, storyboard_id):
        instance.add_dynamic_partitions(storyboards.name, [storyboard_id])
    record = record.model_copy(update={"restored_at": datetime.now(UTC).isoformat(timespec="seconds")})
    _save(instance, record)
    instance.delete_dynamic_partition(ARCHIVED.name, storyboard_id)
    return record


# --- automatic archiving ------------------------------------------------------------------------------------


def last_touched(instance: dg.DagsterInstance, workspace: WorkspaceResource, storyboard_id: str) -> float:
    """When the storyboard last changed: its newest file, or its newest reel, contact sheet or ledger (which
    follow every published clip), whichever is later (unix seconds)."""
    times = [_newest_file(workspace, storyboard_id)]
    for asset in ("storyboard_reel", "contact_sheet", "production_ledger"):
        if (found := latest_materialization(instance, asset, storyboard_id)) is not None:
            times.append(found.timestamp)
    return max(times)


def auto_archive(
    instance: dg.DagsterInstance,
    workspace: WorkspaceResource,
    publisher: Publisher,
    *,
    after_days: float,
    now: float,
    refused: dict[str, float],
) -> tuple[list[str], dict[str, str]]:
    """Archive every registered storyboard untouched for `after_days` as of `now`: (archived ids, refusals
    by id). `refused` maps a storyboard refused earlier to when it had last been touched then: it is not
    checked again until it is touched."""
    archived, refusals = [], {}
    for storyboard_id in sorted(instance.get_dynamic_partitions(storyboards.name)):
        touched = last_touched(instance, workspace, storyboard_id)
        if now - touched < after_days * 86400 or refused.get(storyboard_id) == touched:
            continue
        try:
            archive(instance, workspace, publisher, storyboard_id)
        except ArchiveRefused as exc:
            refusals[storyboard_id] = str(exc)
            refused[storyboard_id] = touched
            continue
        refused.pop(storyboard_id, None)
        archived.append(storyboard_id)
    return archived, refusals


def build_archive_sensor(settings: OperatingSettings) -> dg.SensorDefinition:
    """archive_sensor, archiving after SHOTLINE_ARCHIVE_AFTER_DAYS (off when it is unset); hourly, whatever
    SHOTLINE_SENSOR_INTERVAL_S says: it looks at storyboards untouched for days."""

    @dg.sensor(
        name="archive_sensor",
        minimum_interval_seconds=3600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Archives the storyboards untouched for SHOTLINE_ARCHIVE_AFTER_DAYS whose shots, reel, "
        "manifests and ledger are all published (off while the variable is unset).",
    )
    def archive_sensor(
        context: dg.SensorEvaluationContext, workspace: WorkspaceResource, publisher: PublisherResource
    ) -> dg.SensorResult | dg.SkipReason:
        return archive_tick(context, workspace, publisher, after_days=settings.archive_after_days)

    return archive_sensor


def archive_tick(
    context: dg.SensorEvaluationContext,
    workspace: WorkspaceResource,
    publisher: PublisherResource,
    *,
    after_days: float | None,
) -> dg.SensorResult | dg.SkipReason:
    """One tick of archive_sensor: archive what has been untouched `after_days` (None: nothing)."""
    days = after_days
    if days is None:
        return dg.SkipReason(f"automatic archiving is off: {ARCHIVE_AFTER_DAYS} is not set")
    refused: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
    archived, refusals = auto_archive(
        context.instance, workspace, publisher.publisher(), after_days=days, now=time.time(), refused=refused
    )
    for storyboard_id in archived:
        context.log.info(f"archived storyboard {storyboard_id!r}: untouched for {days:g} days")
    for reason in refusals.values():
        context.log.warning(f"{reason}\n(not checked again until it is touched)")
    # the cursor keeps only refused storyboards still registered, so it stays small
    registered = set(context.instance.get_dynamic_partitions(storyboards.name))
    kept = {k: v for k, v in refused.items() if k in registered}
    return dg.SensorResult(cursor=json.dumps(kept, sort_keys=True))


# --- for the command line -----------------------------------------------------------------------------------


def workspace_from(settings: Settings) -> tuple[WorkspaceResource, Publisher]:
    """The working store, storyboards and publish destination the definitions bind (pipelines.definitions)."""
    workspace = WorkspaceResource(
        storyboards=settings.storyboards,
        home=str(settings.home),
        store_uri=settings.store_uri,
        cache_max_bytes=settings.cache_max_bytes,
        database_url=settings.database_url,
    )
    return workspace, PublisherResource(publish_uri=settings.publish_target).publisher()


# --- helpers --------------------------------------------------------------------------------------------------


def _storyboard_or_none(workspace: WorkspaceResource, storyboard_id: str, problems: list[str]) -> Storyboard | None:
    """The storyboard if its folder is still there; a storyboard that no longer loads is refused."""
    folder = workspace.storyboards_root() / storyboard_id
    if not folder.is_dir():
        return None
    try:
        return load_storyboard(folder)
    except StoryboardError as exc:
        problems.append(f"its storyboard file does not load: {exc}")
        return None


def _read(read: Callable[[], R | None], what: str, problems: list[str]) -> R | None:
    """The latest record `read` finds; None, with the reason in `problems`, when there is none to trust."""
    try:
        found = read()
    except ShotlineError as exc:
        problems.append(f"{what}: {exc}")
        return None
    if found is None:
        problems.append(f"{what}: not published yet")
    return found


def _intact(publisher: Publisher, published: PublishedClip) -> list[str]:
    objects = {"video": published.video, "thumbnail": published.thumbnail, "manifest": published.manifest}
    checks = verify_published(
        publisher,
        {label: (o.uri, o.sha256, o.size) for label, o in objects.items() if o is not None},
        latest=(published.latest.uri, published.sha256),
    )
    return [c.problem for c in checks if c.problem]


def _in_flight(instance: dg.DagsterInstance, partitions: list[str]) -> list[str]:
    wanted = set(partitions)
    runs = instance.get_run_records(filters=dg.RunsFilter(statuses=_IN_FLIGHT))
    return sorted({p for r in runs if (p := r.dagster_run.tags.get("dagster/partition")) in wanted})


def _newest_file(workspace: WorkspaceResource, storyboard_id: str) -> float:
    folder = workspace.storyboards_root() / storyboard_id
    newest = 0.0
    for path in [folder, *folder.rglob("*")] if folder.is_dir() else []:
        try:
            newest = max(newest, path.stat().st_mtime)
        except FileNotFoundError:
            continue
    return newest


def _save(instance: dg.DagsterInstance, record: ArchiveRecord) -> None:
    instance.run_storage.set_cursor_values({_RECORD_PREFIX + record.storyboard_id: record.model_dump_json()})


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
