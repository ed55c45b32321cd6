"""Review from the Dagster UI.

`review_job` records one approval or rejection, launched from the Launchpad with typed run config (shot,
take, decision, note, by), through the same core function as `shotline approve` / `shotline reject`; it
then reports the shot's `approved` check on published_clip, so the asset's partitions show the new state.
`review_sensor` does the same for decisions made anywhere else (the CLI, another host): it follows the
review decisions table by id. And once every published clip of a storyboard whose reel requires approval is
approved, it runs reel_job for it (reel_sensor only follows the clips, not their approval).
"""

from typing import Literal

import dagster as dg
from pydantic import Field

from assets.failures import dagster_failures
from assets.partitions import storyboards
from assets.resources import WorkspaceResource
from assets.review_checks import approval_evaluation
from assets.upstream import latest_metadata_or_none
from pipelines.jobs import reel_job
from pipelines.retention import archived_storyboards
from shotline.errors import InputError, ShotlineError
from shotline.hashing import stable_hash
from shotline.operating import OperatingSettings
from shotline.review import Decision, ReviewBook, decide
from shotline.storyboard import partition_key, split_partition_key

VIA = "dagster"


class ReviewDecisionConfig(dg.Config):
    shot: str = Field(
        description="the shot: <storyboard_id>/<shot_id> (or its partition key <storyboard_id>__<shot_id>)"
    )
    take: int | None = Field(
        default=None, description="the take to decide on; leave it out for the take the storyboard asks for now"
    )
    decision: Literal["approve", "reject"] = Field(description="approve or reject the take's published deliverable")
    note: str = Field(default="", description="what the reviewer saw; required to reject")
    by: str = Field(default="", description="who decides; left empty, 'dagster run <run id>'")


def parse_shot(target: str) -> tuple[str, str]:
    """(storyboard id, shot id) of `<storyboard_id>/<shot_id>` or `<storyboard_id>__<shot_id>`."""
    text = target.strip().strip("/")
    if "/" in text:
        storyboard_id, _, shot_id = text.partition("/")
        if storyboard_id and shot_id and "/" not in shot_id:
            return storyboard_id, shot_id
        raise InputError(f"shot {target!r} is not <storyboard_id>/<shot_id>", field="shot")
    return split_partition_key(text)


@dg.op(description="Record an approval or rejection of a shot's take (bound to its deliverable's sha256).")
def record_review_decision(
    context: dg.OpExecutionContext, config: ReviewDecisionConfig, workspace: WorkspaceResource
) -> None:
    with dagster_failures():
        storyboard_id, shot_id = parse_shot(config.shot)
        recorded = decide(
            workspace.database(),
            workspace.storyboard(storyboard_id),
            shot_id,
            Decision.APPROVED if config.decision == "approve" else Decision.REJECTED,
            take=config.take,
            note=config.note,
            by=config.by or f"dagster run {context.run_id[:8]}",
            via=VIA,
        )
    context.log.info(
        f"{recorded.decision.value}: {storyboard_id}/{shot_id} take {recorded.take} "
        f"({recorded.sha256[:12]}) by {recorded.decided_by}" + (f": {recorded.note}" if recorded.note else "")
    )
    evaluation = approval_evaluation(context.instance, workspace, partition_key(storyboard_id, shot_id))
    if evaluation is not None:
        context.log_event(evaluation)


@dg.job(
    executor_def=dg.in_process_executor,
    description="Approve or reject one shot's take from the Launchpad: config shot, take, decision, note, by.",
)
def review_job() -> None:
    record_review_decision()


def build_review_sensor(settings: OperatingSettings) -> dg.SensorDefinition:
    """review_sensor, ticking every SHOTLINE_SENSOR_INTERVAL_S."""

    @dg.sensor(
        name="review_sensor",
        job=reel_job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Shows review decisions made outside Dagster (`shotline approve` / `reject`, any host) on the "
        "`approved` check of the shot's published_clip, and runs reel_job for a storyboard with "
        "reel.require_approval once every one of its published clips is approved.",
    )
    def review_sensor(
        context: dg.SensorEvaluationContext, workspace: WorkspaceResource
    ) -> dg.SensorResult | dg.SkipReason:
        return review_tick(context, workspace)

    return review_sensor


def review_tick(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult | dg.SkipReason:
    """One tick of review_sensor."""
    book = ReviewBook(workspace.database())
    decisions = book.since(int(context.cursor or 0))
    if not decisions:
        return dg.SkipReason("no new review decisions")
    archived = archived_storyboards(context.instance)  # their partitions are gone: nothing to show or cut
    decisions_shown = [d for d in decisions if d.storyboard_id not in archived]
    # review_job reports its own decisions as it records them
    keys = dict.fromkeys(partition_key(d.storyboard_id, d.shot_id) for d in decisions_shown if d.via != VIA)
    events = [e for key in keys if (e := approval_evaluation(context.instance, workspace, key)) is not None]
    reels = []
    for storyboard_id in dict.fromkeys(d.storyboard_id for d in decisions_shown):
        approved = _all_approved(context, workspace, book, storyboard_id)
        if approved is not None:
            run_key = f"{storyboard_id}@approved-{stable_hash(approved)[:16]}"
            reels.append(dg.RunRequest(partition_key=storyboard_id, run_key=run_key))
    return dg.SensorResult(run_requests=reels, asset_events=events, cursor=str(decisions[-1].id))


def _all_approved(
    context: dg.SensorEvaluationContext, workspace: WorkspaceResource, book: ReviewBook, storyboard_id: str
) -> list[str] | None:
    """The published clips of a storyboard whose reel requires approval, if every one is approved."""
    try:
        storyboard = workspace.storyboard(storyboard_id)
    except ShotlineError as exc:
        context.log.warning(f"storyboard {storyboard_id!r} skipped: {exc}")
        return None
    if not storyboard.reel.require_approval or not context.instance.has_dynamic_partition(
        storyboards.name, storyboard.id
    ):
        return None
    verdicts = book.verdicts(storyboard.id)
    shas = []
    for shot in storyboard.shots:
        published = latest_metadata_or_none(context.instance, "published_clip", shot.partition_key)
        sha = published.get("sha256") if published else None
        verdict = verdicts.get((shot.id, sha)) if sha else None
        if verdict is None or not verdict.approved:
            return None
        shas.append(sha)
    return shas
