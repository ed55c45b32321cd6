"""raw_clip: generate the clip with the configured generator, at most once per distinct input."""

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import shots
from assets.resources import GeneratorResource, PublisherResource, WorkspaceResource
from assets.upstream import upstream_metadata
from shotline.generation import clip_key, generate_clip
from shotline.generators.base import GenerationRequest
from shotline.images import image_url_for_fal, stored_image

CODE_VERSION = "1"


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"fal"},
    deps=["source_image", "clip_prompt"],
    pool="fal",
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    description="The generated clip (fal, or the offline preview), cached by its inputs; records request and cost.",
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
        image = stored_image(upstream_metadata(context, "source_image")["lineage"], store)
        prompt = upstream_metadata(context, "clip_prompt")["prompt"]
        gen = generator.build(store)
        request = GenerationRequest(
            storyboard_id=storyboard.id,
            shot_id=shot.id,
            clip_key=clip_key(
                generator=gen.name,
                model=gen.model,
                image_sha256=image.sha256,
                prompt=prompt,
                duration=shot.duration,
                resolution=shot.resolution,
            ),
            prompt=prompt,
            image_path=image.path,
            image_sha256=image.sha256,
            image_width=image.width,
            image_height=image.height,
            image_url=image_url_for_fal(image, publish_uri=publisher.publish_uri, store=store)
            if gen.name == "fal"
            else None,
            duration=shot.duration,
            resolution=shot.resolution,
        )
        clip = generate_clip(request, gen, store, context.log.info)
    result = clip.result
    metadata: dict[str, object] = {
        "uri": clip.path.resolve().as_uri(),
        "sha256": clip.sha256,
        "generator": result.generator,
        "preview": result.preview,
        "cost_usd": clip.cost_now_usd,
        "original_cost_usd": result.cost_usd,
        "cache_hit": clip.cache_hit,
        "duration_s": result.duration_s,
        "width": result.width,
        "height": result.height,
        "fps": result.fps,
        "clip_key": request.clip_key,
        "lineage": dg.MetadataValue.json(clip.model_dump(mode="json", exclude={"path"})),
    }
    if result.model:
        metadata["model"] = result.model
    if result.request_id:
        metadata["fal_request_id"] = result.request_id
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(clip.sha256))
