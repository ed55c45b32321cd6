"""Declarative automation, only where it cannot spend money: post-processing follows generation.

`final_clip` and `published_clip` are `eager`: when their upstream gets a new materialization outside a
whole-chain run (someone re-materializes `raw_clip` or `final_clip` alone, or a run failed after generation),
they are brought up to date by `clip_automation_sensor`, reusing the generated clip. A run of the whole chain
(clip_job, a UI backfill) updates them in the same run, so the sensor asks for nothing more.

Left out on purpose:
- `source_image`, `clip_prompt`, `raw_clip`: automating them would start paid generation on its own. New and
  changed shots run through storyboard_sensor (SHOTLINE_AUTORUN) and UI backfills, failed ones through the
  nightly sweep, within the budget.
- `storyboard_reel`: it depends on its own storyboard's shots only, which its AllPartitionMapping over the
  whole `shots` set cannot express (any shot of any storyboard would trigger every reel, and any missing
  shot would block them all). reel_sensor follows each storyboard's published clips instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from shotline.operating import OperatingSettings

FOLLOWERS = ("final_clip", "published_clip")


def with_automation(
    assets_defs: Sequence[dg.AssetsDefinition | dg.SourceAsset],
) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    """The assets, with `eager` on the post-generation stages."""

    def follow(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key.to_user_string() not in FOLLOWERS:
            return spec
        return spec.replace_attributes(automation_condition=dg.AutomationCondition.eager())

    automatable = [a for a in assets_defs if isinstance(a, dg.AssetsDefinition)]
    others = [a for a in assets_defs if not isinstance(a, dg.AssetsDefinition)]
    return [*dg.map_asset_specs(follow, automatable), *others]


def build_automation_sensor(settings: OperatingSettings) -> dg.AutomationConditionSensorDefinition:
    """clip_automation_sensor, ticking every SHOTLINE_SENSOR_INTERVAL_S."""
    return dg.AutomationConditionSensorDefinition(
        "clip_automation_sensor",
        target=dg.AssetSelection.assets(*FOLLOWERS),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.sensor_interval_s,
        description="Re-runs post-processing and publishing for a shot whose generated (or finished) clip was "
        "re-materialized on its own. Never starts generation. Interval: SHOTLINE_SENSOR_INTERVAL_S.",
    )
