"""raw_clip: generate the clip with the configured generator, at most once per distinct input.

On fal, every record of the request ledger (submitting, submitted with request id and URLs, completed, failed,
cancelled, with whether it was billed and what it cost) is also logged as an AssetObservation of this
partition the moment it is written; queue position and fal's log lines go to the run's log.
"""

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import shots
from assets.presentation import card_metadata
from assets.resources import GeneratorResource, PublisherResource, WorkspaceResource
from assets.upstream import upstream_record, write_record
from shotline.clip_index import ClipIndex
from shotline.fal.ledger import LedgerEntry, LedgerState
from shotline.generators.base import GenerationRequest
from shotline.generators.cache import generate_clip, request_for_shot
from shotline.images import check_image_current
from shotline.previews import ClipCard, clip_link
from shotline.prompts import check_prompt_current
from shotline.stage_records import GeneratedClipRecord, PromptRecord, SourcedImageRecord

# 2: reads its inputs from stage records; the materialization points at a GeneratedClipRecord (record_key)
CODE_VERSION = "2"


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"fal"},
    deps=["source_image", "clip_prompt"],
    pool="fal",
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    description="The clip generated from the still and the prompt (fal, or the offline preview), paid for at most "
    "once per distinct input, with its fal request and what it cost.",
)
def raw_clip(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    generator: GeneratorResource,
    publisher: PublisherResource,
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard, shot = workspace.shot(context.partition_key)
        store = workspace.store()
        image = upstream_record(context, store, SourcedImageRecord).image_in(store)
        prompt = upstream_record(context, store, PromptRecord).prompt.text
        # before anything is paid for: the inputs found upstream are still the shot's own
        check_image_current(image, shot.image, storyboard_id=storyboard.id, shot_id=shot.id)
        check_prompt_current(storyboard, shot, prompt)

        recorded: list[LedgerEntry] = []

        def observe(entry: LedgerEntry) -> None:
            recorded.append(entry)
            context.log_event(
                dg.AssetObservation(
                    asset_key=context.asset_key,
                    partition=context.partition_key,
                    description=f"fal request {entry.state.value}",
                    metadata=entry.public_view(),
                )
            )

        db = workspace.database()
        gen = generator.build(store, db, on_record=observe)
        request = request_for_shot(storyboard.id, shot, image, prompt, gen)
        try:
            clip = generate_clip(request, gen, store, ClipIndex(db), context.log.info, take=shot.take)
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            # The run is being terminated and the generator has just cancelled the fal request. Dagster would
            # turn the interrupt into a retry of this step (it has a RetryPolicy), and a retry would pay for
            # a new request: stop for good instead.
            raise _terminated(request, recorded[-1] if recorded else None) from None
        record = write_record(store, GeneratedClipRecord.of(clip))
    uri = store.object_uri(clip.sha256, ".mp4")
    link, expires_at = clip_link(uri)
    card = ClipCard.for_shot(
        shot,
        prompt=prompt,
        generated=clip.result,
        cache_hit=clip.cache_hit,
        take=clip.take,
        link=link,
        link_expires_at=expires_at,
    )
    metadata = {**card_metadata(card, video=clip.path), "uri": uri, **clip.metadata(), **record}
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(clip.sha256))


def _terminated(request: GenerationRequest, entry: LedgerEntry | None) -> dg.Failure:
    where = request.where
    if entry is None:
        return dg.Failure(
            description=f"{where}: the run was terminated; no fal request was outstanding", allow_retries=False
        )
    rid = entry.request_id
    if rid is None:
        return dg.Failure(
            description=f"{where}: the run was terminated during the fal submit, so its outcome is unknown "
            f"(it may have been queued and billed); the next run of this shot looks the request up in fal's "
            "listing and adopts it before ever submitting again",
            metadata={"fal_state": entry.state.value, "billed": "unknown"},
            allow_retries=False,
        )
    if entry.state == LedgerState.CANCEL_REQUESTED:
        outcome = (
            f"fal accepted a cancel of request {rid}, but fal may still run it to the end (and bill it). Not "
            "retried: the next run of this shot follows that request first and uses its video if it comes; only "
            "once fal proves the cancel does it submit a new one"
        )
    else:
        outcome = (
            f"fal request {rid} could not be cancelled and is {entry.state.value}; "
            "running the shot again resumes it instead of paying for a new one"
        )
    return dg.Failure(
        description=f"{where}: the run was terminated while generating; {outcome}",
        metadata={
            "fal_request_id": rid,
            "fal_state": entry.state.value,
            "billed": "unknown" if entry.billed is None else bool(entry.billed),
            "cost_usd": entry.cost_usd or 0.0,
        },
        allow_retries=False,
    )
