"""The nightly schedules, which start stopped: a data engineer switches them on in the UI (Automation tab).

- `nightly_sweep` (SHOTLINE_SWEEP_CRON) retries the shots whose last run failed, cheapest first, as many as
  today's SHOTLINE_BUDGET_USD still covers. A shot whose clip was already generated (it failed later, in
  post-processing or publishing) costs nothing to retry; a shot is retried at most MAX_SWEEP_ATTEMPTS nights
  for the same spec, so a storyboard error does not fail again every night. Cancelled runs are not failures:
  someone stopped them on purpose.
- `nightly_refresh` (SHOTLINE_REFRESH_CRON, after the sweep) runs reel_job for every storyboard whose shots
  are all published and whose reel is missing, failed, or older than one of its clips (reel, contact sheet
  and production ledger), and rebuilds the production ledger alone for every other registered storyboard, so
  the ledger says every morning what failed, what runs and what it cost.

Both read their cron strings in SHOTLINE_SCHEDULE_TIMEZONE (shotline.operating).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import dagster as dg

from assets.partitions import shots, storyboards
from assets.resources import GeneratorResource, WorkspaceResource
from assets.upstream import latest_materialization
from pipelines.jobs import clip_job, reel_job
from pipelines.sensors import SPEC_TAG
from shotline import catalog
from shotline.budget import Budget
from shotline.fal.pricing import estimate_cost_usd, to_cents
from shotline.operating import OperatingSettings
from shotline.storyboard import Storyboard

MAX_SWEEP_ATTEMPTS = 3
SWEEP_TAG = "shotline/sweep"
LEDGER_ASSET = dg.AssetKey("production_ledger")  # per storyboard: what failed, what runs, what it cost; reel_job

_FAILED = dg.AssetPartitionStatus.FAILED
_MATERIALIZED = dg.AssetPartitionStatus.MATERIALIZED


def _status(instance: dg.DagsterInstance, asset: str, keys: Sequence[str]) -> Mapping[str, object]:
    if not keys:
        return {}
    return instance.get_status_by_partition(dg.AssetKey(asset), list(keys), shots) or {}


def failed_shots(instance: dg.DagsterInstance, keys: Sequence[str]) -> list[str]:
    """The shots whose latest attempt at publishing failed (a FAILURE run, not a cancelled one)."""
    status = _status(instance, "published_clip", keys)
    return [key for key in keys if status.get(key) == _FAILED]


def sweep_requests(
    instance: dg.DagsterInstance,
    found: catalog.Catalog,
    *,
    budget_left: Decimal | None,
    paid: bool,
    log: dg.DagsterLogManager | None = None,
) -> list[dg.RunRequest]:
    """clip_job run requests for the failed shots that fit the budget (None: no cap), cheapest first."""
    specs = found.shot_specs()
    registered = set(instance.get_dynamic_partitions(shots.name))
    shot_of = {shot.partition_key: shot for sb in found.storyboards for shot in sb.shots}
    failed = failed_shots(instance, [k for k in specs if k in registered])
    generated = _status(instance, "raw_clip", failed)
    candidates: list[tuple[Decimal, str]] = []
    for key in failed:
        tags = {SWEEP_TAG: "retry", SPEC_TAG: specs[key][:16], "dagster/partition": key}
        attempts = instance.get_runs_count(dg.RunsFilter(tags=tags))
        if attempts >= MAX_SWEEP_ATTEMPTS:
            _info(log, f"{key}: failed again after {attempts} nightly retries of this spec; left for a person")
            continue
        shot = shot_of[key]
        free = not paid or generated.get(key) == _MATERIALIZED
        cost = Decimal(0) if free else to_cents(estimate_cost_usd(shot.resolution, shot.duration))
        candidates.append((cost, key))
    requests, left, skipped = [], budget_left, []
    for cost, key in sorted(candidates):
        if left is not None and cost > left:
            skipped.append(key)
            continue
        if left is not None:
            left -= cost
        requests.append(
            dg.RunRequest(
                partition_key=key,
                run_key=f"sweep:{key}@{specs[key][:16]}",
                tags={SWEEP_TAG: "retry", SPEC_TAG: specs[key][:16]},
            )
        )
    if skipped:
        _info(log, f"not retried tonight, over today's budget: {', '.join(skipped)}")
    return requests


def stale_reels(instance: dg.DagsterInstance, found: catalog.Catalog) -> list[Storyboard]:
    """Registered storyboards whose every shot is published and whose reel is missing, failed or older than
    one of its published clips."""
    registered = set(instance.get_dynamic_partitions(storyboards.name))
    reel_status = (
        instance.get_status_by_partition(
            dg.AssetKey("storyboard_reel"), [sb.id for sb in found.storyboards if sb.id in registered], storyboards
        )
        or {}
    )
    stale = []
    for sb in found.storyboards:
        if sb.id not in registered:
            continue
        clip_ids = [_latest_storage_id(instance, "published_clip", shot.partition_key) for shot in sb.shots]
        if any(i is None for i in clip_ids):
            continue
        reel_id = _latest_storage_id(instance, "storyboard_reel", sb.id)
        if reel_id is None or reel_status.get(sb.id) == _FAILED or reel_id < max(i for i in clip_ids if i):
            stale.append(sb)
    return stale


def _latest_storage_id(instance: dg.DagsterInstance, asset: str, partition: str) -> int | None:
    record = latest_materialization(instance, asset, partition)
    return record.storage_id if record else None


def _info(log: dg.DagsterLogManager | None, message: str) -> None:
    if log is not None:
        log.info(message)


def build_schedules(settings: OperatingSettings, *, ledger: dg.AssetKey | None = None) -> list[dg.ScheduleDefinition]:
    """The two nightly schedules, at the times `settings` give. `ledger`: the production ledger's key when
    reel_job builds one, so that the refresh rebuilds every storyboard's ledger, complete or not."""

    @dg.schedule(
        name="nightly_sweep",
        job=clip_job,
        cron_schedule=settings.sweep_cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Retries the shots whose last run failed (not cancelled ones), cheapest first, within "
        "today's SHOTLINE_BUDGET_USD; a clip already generated is reused, so its retry costs nothing. "
        f"At most {MAX_SWEEP_ATTEMPTS} nights per shot spec. Time: SHOTLINE_SWEEP_CRON.",
    )
    def nightly_sweep(
        context: dg.ScheduleEvaluationContext, workspace: WorkspaceResource, generator: GeneratorResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        found = catalog.scan(workspace.storyboards_root())
        paid = generator.kind == "fal"
        budget_left = None
        if paid and generator.budget_usd is not None:
            spend = Budget(workspace.database(), generator.budget_usd).spend()
            budget_left = spend.left
            context.log.info(f"budget left today ({spend.day}, UTC): ${budget_left}")
        requests = sweep_requests(context.instance, found, budget_left=budget_left, paid=paid, log=context.log)
        if not requests:
            return dg.SkipReason("no failed shot to retry within today's budget")
        context.log.info(f"retrying {len(requests)} failed shot(s): {', '.join(r.partition_key for r in requests)}")
        return requests

    @dg.schedule(
        name="nightly_refresh",
        job=reel_job,
        cron_schedule=settings.refresh_cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Runs reel_job for every storyboard whose shots are all published and whose reel is "
        "missing, failed or older than one of its clips"
        + ("; rebuilds the production ledger of every other storyboard" if ledger is not None else "")
        + ". Time: SHOTLINE_REFRESH_CRON.",
    )
    def nightly_refresh(
        context: dg.ScheduleEvaluationContext, workspace: WorkspaceResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        requests = refresh_requests(context.instance, catalog.scan(workspace.storyboards_root()), ledger=ledger)
        if not requests:
            return dg.SkipReason("every complete storyboard's reel is up to date")
        return requests

    return [nightly_sweep, nightly_refresh]


def refresh_requests(
    instance: dg.DagsterInstance, found: catalog.Catalog, *, ledger: dg.AssetKey | None
) -> list[dg.RunRequest]:
    """reel_job in full for the stale reels; the ledger alone for every other registered storyboard."""
    stale = {sb.id for sb in stale_reels(instance, found)}
    registered = set(instance.get_dynamic_partitions(storyboards.name))
    requests = []
    for sb in found.storyboards:
        if sb.id in stale:
            requests.append(dg.RunRequest(partition_key=sb.id, run_key=f"refresh:{sb.id}"))
        elif ledger is not None and sb.id in registered:
            requests.append(
                dg.RunRequest(partition_key=sb.id, run_key=f"refresh:{sb.id}:ledger", asset_selection=[ledger])
            )
    return requests
