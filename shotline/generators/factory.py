"""Pick the generator the settings ask for."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from shotline.errors import InputError
from shotline.generators.base import Generator
from shotline.store import WorkStore


def build_generator(
    *,
    kind: str,
    store: WorkStore,
    fal_key: SecretStr | None,
    fal_queue_url: str,
    fal_model: str,
    budget_usd: float | None,
    deadline_s: float,
    **fal_options: Any,
) -> Generator:
    """`fal_options` go to build_fal_generator (queue_timeout_s, on_record, poll_interval, ...)."""
    if kind == "preview":
        from shotline.generators.preview import PreviewGenerator

        return PreviewGenerator()
    if kind == "fal":
        if fal_key is None:
            raise InputError("SHOTLINE_GENERATOR is 'fal' but FAL_KEY is not set", field="FAL_KEY")
        from shotline.fal.generator import build_fal_generator

        return build_fal_generator(
            store=store,
            key=fal_key,
            base_url=fal_queue_url,
            model=fal_model,
            budget_usd=budget_usd,
            deadline_s=deadline_s,
            **fal_options,
        )
    raise InputError(f"unknown generator {kind!r}: use 'fal' or 'preview'", field="SHOTLINE_GENERATOR")
