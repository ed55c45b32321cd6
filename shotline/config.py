"""Settings from the environment (the design's variables), with their defaults. Secrets stay SecretStr."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

DEFAULT_FAL_QUEUE_URL = "https://queue.fal.run"
DEFAULT_FAL_MODEL = "xai/grok-imagine-video/v1.5/image-to-video"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    fal_key: SecretStr | None = None
    generator: Literal["fal", "preview"] = "preview"
    fal_queue_url: str = DEFAULT_FAL_QUEUE_URL
    fal_model: str = DEFAULT_FAL_MODEL
    storyboards: str = "./storyboards"
    home: Path = Path("./.shotline")
    publish_uri: str = ""
    budget_usd: float | None = None

    @property
    def publish_target(self) -> str:
        return self.publish_uri or str(self.home / "published")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        key = env.get("FAL_KEY") or None
        generator = env.get("SHOTLINE_GENERATOR") or ("fal" if key else "preview")
        if generator not in ("fal", "preview"):
            raise ValueError(f"SHOTLINE_GENERATOR must be 'fal' or 'preview', not {generator!r}")
        budget = env.get("SHOTLINE_BUDGET_USD")
        return cls(
            fal_key=SecretStr(key) if key else None,
            generator=generator,  # type: ignore[arg-type]
            fal_queue_url=env.get("SHOTLINE_FAL_QUEUE_URL") or DEFAULT_FAL_QUEUE_URL,
            fal_model=env.get("SHOTLINE_FAL_MODEL") or DEFAULT_FAL_MODEL,
            storyboards=env.get("SHOTLINE_STORYBOARDS") or "./storyboards",
            home=Path(env.get("SHOTLINE_HOME") or "./.shotline"),
            publish_uri=env.get("SHOTLINE_PUBLISH_URI") or "",
            budget_usd=float(budget) if budget else None,
        )
