"""The one Definitions of shotline: assets, checks, jobs, sensors, schedules and resources, built from one
`Settings` (the design's environment variables, read once when the code location loads)."""

from __future__ import annotations

import dagster as dg

import assets
from assets.resources import CredentialsResource, GeneratorResource, PublisherResource, WorkspaceResource
from pipelines.automation import build_automation_sensor, with_automation
from pipelines.jobs import clip_job, reel_job
from pipelines.retention import build_archive_sensor
from pipelines.review import build_review_sensor, review_job
from pipelines.schedules import LEDGER_ASSET, build_schedules
from pipelines.sensors import build_sensors
from shotline.config import Settings
from shotline.credentials.keys import check_configured
from shotline.credentials.settings import KEY_PEM_VAR


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources, bound to `settings`. The fal key goes in as an EnvVar (FAL_KEY), so its value is read
    when a run starts and never shown in the UI or written to run config; so does a signing key given as PEM.
    A configured signing chain that cannot work stops the definitions loading (ConfigError)."""
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
            fal_key=dg.EnvVar("FAL_KEY") if settings.fal_key else None,
            fal_queue_url=settings.fal_queue_url,
            fal_rest_url=settings.fal_rest_url,
            fal_cdn_url=settings.fal_cdn_url,
            fal_api_url=settings.fal_api_url,
            fal_max_attempts=settings.fal_max_attempts,
            fal_model=settings.fal_model,
            budget_usd=settings.budget_usd,
            deadline_s=settings.fal_deadline_s,
            queue_timeout_s=settings.fal_queue_timeout_s,
            lease_s=settings.fal_lease_s,
            poll_interval_s=settings.fal_poll_interval_s,
            max_poll_interval_s=settings.fal_max_poll_interval_s,
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


def build_definitions(settings: Settings) -> dg.Definitions:
    """Everything Dagster loads, with every sensor, schedule and resource configured from `settings`."""
    operating = settings.operating
    loaded = with_automation(dg.load_assets_from_package_module(assets))
    ledger = LEDGER_ASSET if LEDGER_ASSET in reel_job.selection.resolve(loaded, allow_missing=True) else None
    return dg.Definitions(
        assets=loaded,
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=[clip_job, reel_job, review_job],
        sensors=[
            *build_sensors(operating),
            build_automation_sensor(operating),
            build_review_sensor(operating),
            build_archive_sensor(operating),
        ],
        schedules=build_schedules(operating, ledger=ledger),
        resources=build_resources(settings),
        # every run executes its steps in its own process, one after another: UI backfills and automation
        # runs (the implicit asset job) as well as clip_job and reel_job
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())
