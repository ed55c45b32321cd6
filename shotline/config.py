"""Settings from the environment (the design's variables), with their defaults. Secrets stay SecretStr."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from shotline.credentials.settings import CredentialSettings
from shotline.db.engine import sqlite_url

DEFAULT_FAL_QUEUE_URL = "https://queue.fal.run"
DEFAULT_FAL_REST_URL = "https://rest.fal.ai"
DEFAULT_FAL_CDN_URL = "https://v3.fal.media"
DEFAULT_FAL_API_URL = "https://api.fal.ai"
DEFAULT_FAL_MODEL = "xai/grok-imagine-video/v1.5/image-to-video"
DEFAULT_FAL_MAX_ATTEMPTS = 3
# the local cache of a shared (s3://) working store: most bytes it keeps before evicting the least recently used
DEFAULT_CACHE_MAX_BYTES = 20 << 30


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
    storyboards: str = "./storyboards"
    home: Path = Path("./.shotline")
    publish_uri: str = ""
    budget_usd: float | None = None
    # SQLAlchemy URL of the request ledger, clip index and budget; "" = a SQLite file under `home`
    database_url: str = ""
    # the content-addressed working store; "" = `home` itself
    store_uri: str = ""
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    # content credentials (SHOTLINE_C2PA*); their development chain lives under `home` (see `credentials`)
    c2pa: CredentialSettings = CredentialSettings()

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
        generator = env.get("SHOTLINE_GENERATOR") or ("fal" if key else "preview")
        if generator not in ("fal", "preview"):
            raise ValueError(f"SHOTLINE_GENERATOR must be 'fal' or 'preview', not {generator!r}")
        budget = env.get("SHOTLINE_BUDGET_USD")
        home = Path(env.get("SHOTLINE_HOME") or "./.shotline")
        return cls(
            fal_key=SecretStr(key) if key else None,
            generator=generator,  # type: ignore[arg-type]
            fal_queue_url=env.get("SHOTLINE_FAL_QUEUE_URL") or DEFAULT_FAL_QUEUE_URL,
            fal_rest_url=env.get("SHOTLINE_FAL_REST_URL") or DEFAULT_FAL_REST_URL,
            fal_cdn_url=env.get("SHOTLINE_FAL_CDN_URL") or DEFAULT_FAL_CDN_URL,
            fal_api_url=env.get("SHOTLINE_FAL_API_URL") or DEFAULT_FAL_API_URL,
            fal_model=env.get("SHOTLINE_FAL_MODEL") or DEFAULT_FAL_MODEL,
            fal_max_attempts=_positive_int(env, "SHOTLINE_FAL_MAX_ATTEMPTS", DEFAULT_FAL_MAX_ATTEMPTS),
            storyboards=env.get("SHOTLINE_STORYBOARDS") or "./storyboards",
            home=home,
            publish_uri=env.get("SHOTLINE_PUBLISH_URI") or "",
            budget_usd=float(budget) if budget else None,
            database_url=(env.get("SHOTLINE_DATABASE_URL") or "").strip(),
            store_uri=(env.get("SHOTLINE_STORE_URI") or "").strip(),
            cache_max_bytes=_positive_int(env, "SHOTLINE_CACHE_MAX_BYTES", DEFAULT_CACHE_MAX_BYTES),
            c2pa=CredentialSettings.from_env(env, home),
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
