"""The one Definitions of shotline: assets, checks, jobs, sensors, and resources bound to the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

import assets
from assets.resources import GeneratorResource, PublisherResource, WorkspaceResource
from pipelines.jobs import clip_job, reel_job
from pipelines.sensors import reel_sensor, storyboard_sensor
from shotline.config import Settings


def resources_from_env(env: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """Bind the resources to the design's environment variables. The fal key goes in as an EnvVar, so its
    value is read when a run starts and never shown in the UI or written to run config."""
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    return {
        "workspace": WorkspaceResource(storyboards=settings.storyboards, home=str(settings.home)),
        "generator": GeneratorResource(
            kind=settings.generator,
            fal_key=dg.EnvVar("FAL_KEY") if env.get("FAL_KEY") else None,
            fal_queue_url=settings.fal_queue_url,
            fal_model=settings.fal_model,
            budget_usd=settings.budget_usd,
        ),
        "publisher": PublisherResource(publish_uri=settings.publish_target),
    }


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_package_module(assets),
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=[clip_job, reel_job],
        sensors=[storyboard_sensor, reel_sensor],
        resources=resources_from_env(env),
    )


defs = build_definitions()
