"""The two jobs: the per-shot chain, and the per-storyboard reel. Both run in-process: the steps are
I/O-bound or call ffmpeg, and a process per step would add seconds to every shot."""

import dagster as dg

CLIP_ASSETS = ["source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip"]

clip_job = dg.define_asset_job(
    "clip_job",
    selection=dg.AssetSelection.assets(*CLIP_ASSETS),
    executor_def=dg.in_process_executor,
    description="Source, prompt, generate, post-process and publish one shot.",
)

reel_job = dg.define_asset_job(
    "reel_job",
    # the contact sheet and the ledger do not need the reel: they are drawn even when a shot is missing
    selection=dg.AssetSelection.assets("storyboard_reel", "contact_sheet", "production_ledger"),
    executor_def=dg.in_process_executor,
    description="Cut a storyboard's final clips into its reel and publish it, with its contact sheet and "
    "production ledger.",
)
