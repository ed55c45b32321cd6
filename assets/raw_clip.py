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
from shotline.fal.interruption import interrupted
from shotline.fal.ledger import LedgerEntry
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
            stopped = interrupted(request.where, recorded[-1] if recorded else None)
            raise dg.Failure(stopped.description, metadata=stopped.metadata, allow_retries=False) from None
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
