"""source_image: fetch the shot's still, check it, normalise it, keep it content-addressed."""

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import shots
from assets.presentation import card_metadata
from assets.resources import WorkspaceResource
from assets.upstream import write_record
from shotline.images import ingest_image
from shotline.previews import ClipCard
from shotline.stage_records import SourcedImageRecord

# 2: the materialization points at a SourcedImageRecord (record_key) instead of carrying `lineage`
CODE_VERSION = "2"


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"pillow"},
    # only a source that may come back (SourceUnavailable: network, timeout, 5xx) is retried; bad input is not
    retry_policy=dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    description="The shot's still, fetched (storyboard folder, https or s3), validated and normalised, so that "
    "every later stage starts from the same image.",
)
def source_image(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard, shot = workspace.shot(context.partition_key)
        store = workspace.store()
        image = ingest_image(shot.image, storyboard.folder, store, storyboard_id=storyboard.id, shot_id=shot.id)
        record = write_record(store, SourcedImageRecord.of(image))
        card = ClipCard.for_shot(shot, width=image.width, height=image.height)
    return dg.MaterializeResult(
        metadata={
            **card_metadata(card, image=image.path),
            "uri": store.object_uri(image.sha256, ".png"),
            "sha256": image.sha256,
            "origin": image.origin,
            "origin_kind": image.origin_kind,
            "source_sha256": image.source_sha256,
            "width": image.width,
            "height": image.height,
            **record,
        },
        data_version=dg.DataVersion(image.sha256),
    )
