"""The one Definitions of shotline: assets, checks, jobs, sensors, and resources bound to the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

import assets
from assets.resources import CredentialsResource, GeneratorResource, PublisherResource, WorkspaceResource
from pipelines.automation import clip_automation_sensor, with_automation
from pipelines.jobs import clip_job, reel_job
from pipelines.operating import OperatingSettings
from pipelines.retention import archive_sensor
from pipelines.review import review_job, review_sensor
from pipelines.schedules import LEDGER_ASSET, build_schedules
from pipelines.sensors import reel_sensor, storyboard_sensor
from shotline.config import Settings
from shotline.credentials.keys import check_configured
from shotline.credentials.settings import KEY_PEM_VAR


def resources_from_env(env: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """Bind the resources to the design's environment variables. The fal key goes in as an EnvVar, so its
    value is read when a run starts and never shown in the UI or written to run config; so does a signing key
    given as PEM. A configured signing chain that cannot work stops the definitions loading (ConfigError)."""
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    credentials = settings.credentials
    check_configured(credentials)
    return {
        "workspace": WorkspaceResource(
            storyboards=settings.storyboards,
            home=str(settings.home),
            store_uri=settings.store_uri,
            cache_max_bytes=settings.cache_max_bytes,
            database_url=settings.database_url,
        ),
        "generator": GeneratorResource(
            kind=settings.generator,
            fal_key=dg.EnvVar("FAL_KEY") if env.get("FAL_KEY") else None,
            fal_queue_url=settings.fal_queue_url,
            fal_rest_url=settings.fal_rest_url,
            fal_cdn_url=settings.fal_cdn_url,
            fal_api_url=settings.fal_api_url,
            fal_max_attempts=settings.fal_max_attempts,
            fal_model=settings.fal_model,
            budget_usd=settings.budget_usd,
            **GeneratorResource.timing_from_env(env),
        ),
        "publisher": PublisherResource(publish_uri=settings.publish_target),
        "credentials": CredentialsResource(
            enabled=credentials.enabled,
            home=str(settings.home),
            cert=str(credentials.cert or ""),
            key=str(credentials.key or ""),
            key_pem=dg.EnvVar(KEY_PEM_VAR) if credentials.key_pem else None,
            tsa_url=credentials.tsa_url or "",
            trust_anchors=str(credentials.trust_anchors or ""),
        ),
    }


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    loaded = with_automation(dg.load_assets_from_package_module(assets))
    ledger = LEDGER_ASSET if LEDGER_ASSET in reel_job.selection.resolve(loaded, allow_missing=True) else None
    return dg.Definitions(
        assets=loaded,
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=[clip_job, reel_job, review_job],
        sensors=[storyboard_sensor, reel_sensor, clip_automation_sensor, review_sensor, archive_sensor],
        schedules=build_schedules(OperatingSettings.from_env(env), ledger=ledger),
        resources=resources_from_env(env),
        # every run executes its steps in its own process, one after another: UI backfills and automation
        # runs (the implicit asset job) as well as clip_job and reel_job
        executor=dg.in_process_executor,
    )


defs = build_definitions()
