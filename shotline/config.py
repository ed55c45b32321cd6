"""Settings from the environment (the design's variables): the one place their defaults live. Secrets stay
SecretStr. The Dagster definitions are built from one Settings (pipelines.definitions.build_definitions)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from shotline.credentials.settings import CredentialSettings
from shotline.db.engine import sqlite_url
from shotline.operating import OperatingSettings

DEFAULT_FAL_QUEUE_URL = "https://queue.fal.run"
DEFAULT_FAL_REST_URL = "https://rest.fal.ai"
DEFAULT_FAL_CDN_URL = "https://v3.fal.media"
DEFAULT_FAL_API_URL = "https://api.fal.ai"
DEFAULT_FAL_MODEL = "xai/grok-imagine-video/v1.5/image-to-video"
DEFAULT_FAL_MAX_ATTEMPTS = 3
DEFAULT_FAL_DEADLINE_S = 30 * 60.0
DEFAULT_FAL_LEASE_S = 60.0
DEFAULT_FAL_POLL_INTERVAL_S = 0.5
DEFAULT_FAL_MAX_POLL_INTERVAL_S = 5.0
DEFAULT_STORYBOARDS = "./storyboards"
DEFAULT_HOME = "./.shotline"
# the local cache of a shared (s3://) working store: most bytes it keeps before evicting the least recently used
DEFAULT_CACHE_MAX_BYTES = 20 << 30
# the per-clip timings of fal generation, by environment variable (extend the design's table, never rename)
FAL_TIMING_VARIABLES = {
    "SHOTLINE_FAL_DEADLINE_S": "fal_deadline_s",
    "SHOTLINE_FAL_QUEUE_TIMEOUT_S": "fal_queue_timeout_s",
    "SHOTLINE_FAL_POLL_INTERVAL_S": "fal_poll_interval_s",
    "SHOTLINE_FAL_MAX_POLL_INTERVAL_S": "fal_max_poll_interval_s",
    "SHOTLINE_FAL_LEASE_S": "fal_lease_s",
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    fal_key: SecretStr | None = None
    generator: Literal["fal", "preview"] = "preview"
    fal_queue_url: str = DEFAULT_FAL_QUEUE_URL
    fal_rest_url: str = DEFAULT_FAL_REST_URL
    fal_cdn_url: str = DEFAULT_FAL_CDN_URL
    fal_api_url: str = DEFAULT_FAL_API_URL
    fal_model: str = DEFAULT_FAL_MODEL
    fal_max_attempts: int = DEFAULT_FAL_MAX_ATTEMPTS
    # most a clip may take from submit to checked video; past it the fal request is cancelled
    fal_deadline_s: float = DEFAULT_FAL_DEADLINE_S
    # X-Fal-Request-Timeout: how long fal may keep a request waiting to start; None = the deadline
    fal_queue_timeout_s: float | None = None
    # a worker holds its clip this long without renewing before another host may take it over
    fal_lease_s: float = DEFAULT_FAL_LEASE_S
    fal_poll_interval_s: float = DEFAULT_FAL_POLL_INTERVAL_S
    fal_max_poll_interval_s: float = DEFAULT_FAL_MAX_POLL_INTERVAL_S
    storyboards: str = DEFAULT_STORYBOARDS
    home: Path = Path(DEFAULT_HOME)
    publish_uri: str = ""
    budget_usd: float | None = None
    # SQLAlchemy URL of the request ledger, clip index and budget; "" = a SQLite file under `home`
    database_url: str = ""
    # the content-addressed working store; "" = `home` itself
    store_uri: str = ""
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    # content credentials (SHOTLINE_C2PA*); their development chain lives under `home` (see `credentials`)
    c2pa: CredentialSettings = CredentialSettings()
    # how the sensors and schedules behave (SHOTLINE_SENSOR_INTERVAL_S, SHOTLINE_AUTORUN, the cron strings...)
    operating: OperatingSettings = OperatingSettings()

    @property
    def credentials(self) -> CredentialSettings:
        return self.c2pa.model_copy(update={"home": self.home})

    @property
    def publish_target(self) -> str:
        return self.publish_uri or str(self.home / "published")

    @property
    def database_target(self) -> str:
        return self.database_url or sqlite_url(self.home)

    @property
    def store_target(self) -> str:
        return self.store_uri or str(self.home)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        key = env.get("FAL_KEY") or None
        choice = env.get("SHOTLINE_GENERATOR") or ("fal" if key else "preview")
        if choice not in ("fal", "preview"):
            raise ValueError(f"SHOTLINE_GENERATOR must be 'fal' or 'preview', not {choice!r}")
        generator: Literal["fal", "preview"] = "fal" if choice == "fal" else "preview"
        budget = env.get("SHOTLINE_BUDGET_USD")
        home = Path(env.get("SHOTLINE_HOME") or DEFAULT_HOME)
        return cls(
            fal_key=SecretStr(key) if key else None,
            generator=generator,
            fal_queue_url=env.get("SHOTLINE_FAL_QUEUE_URL") or DEFAULT_FAL_QUEUE_URL,
            fal_rest_url=env.get("SHOTLINE_FAL_REST_URL") or DEFAULT_FAL_REST_URL,
            fal_cdn_url=env.get("SHOTLINE_FAL_CDN_URL") or DEFAULT_FAL_CDN_URL,
            fal_api_url=env.get("SHOTLINE_FAL_API_URL") or DEFAULT_FAL_API_URL,
            fal_model=env.get("SHOTLINE_FAL_MODEL") or DEFAULT_FAL_MODEL,
            fal_max_attempts=_positive_int(env, "SHOTLINE_FAL_MAX_ATTEMPTS", DEFAULT_FAL_MAX_ATTEMPTS),
            storyboards=env.get("SHOTLINE_STORYBOARDS") or DEFAULT_STORYBOARDS,
            home=home,
            publish_uri=env.get("SHOTLINE_PUBLISH_URI") or "",
            budget_usd=float(budget) if budget else None,
            database_url=(env.get("SHOTLINE_DATABASE_URL") or "").strip(),
            store_uri=(env.get("SHOTLINE_STORE_URI") or "").strip(),
            cache_max_bytes=_positive_int(env, "SHOTLINE_CACHE_MAX_BYTES", DEFAULT_CACHE_MAX_BYTES),
            c2pa=CredentialSettings.from_env(env, home),
            operating=OperatingSettings.from_env(env),
            **_fal_timings(env),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return value


def _fal_timings(env: Mapping[str, str]) -> dict[str, float]:
    """The fal timing fields set in `env` (unset or empty variables keep the defaults)."""
    values: dict[str, float] = {}
    for variable, field in FAL_TIMING_VARIABLES.items():
        raw = (env.get(variable) or "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{variable} must be a positive number of seconds, not {raw!r}")
        values[field] = value
    return values
