"""Run the real Dagster jobs, in-process, against a test instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from assets.upstream import latest_metadata_or_none
from pipelines.definitions import build_definitions
from shotline.config import Settings
from shotline.storyboard import Storyboard

CLIP_ASSETS = ("source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip")


def run_storyboard(
    storyboard: Storyboard, env: Mapping[str, str], instance: dg.DagsterInstance, *, reel: bool = True
) -> dict[str, dict[str, Any]]:
    """clip_job for every shot, then reel_job; returns {partition: {asset: metadata}}."""
    defs = build_definitions(Settings.from_env(env))
    keys = [shot.partition_key for shot in storyboard.shots]
    instance.add_dynamic_partitions("shots", [k for k in keys if not instance.has_dynamic_partition("shots", k)])
    if not instance.has_dynamic_partition("storyboards", storyboard.id):
        instance.add_dynamic_partitions("storyboards", [storyboard.id])
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        result = defs.resolve_job_def("clip_job").execute_in_process(partition_key=key, instance=instance)
        assert result.success
        out[key] = {a: latest_metadata_or_none(instance, a, key) for a in CLIP_ASSETS}
    if reel:
        result = defs.resolve_job_def("reel_job").execute_in_process(partition_key=storyboard.id, instance=instance)
        assert result.success
        out[storyboard.id] = {"storyboard_reel": latest_metadata_or_none(instance, "storyboard_reel", storyboard.id)}
    return out
