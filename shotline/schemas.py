"""JSON Schemas of the JSON documents shotline publishes, generated from their pydantic models and committed
under `schemas/` so that readers in any language can validate what they fetch.

Regenerate after changing a model: `python -m shotline.schemas [folder]` (default: ./schemas). A test fails
while the committed files differ from what the models generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shotline.fsutil import atomic_write_text
from shotline.manifest import ClipManifest, LatestPointer, ReelManifest
from shotline.production_ledger import ProductionLedger

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# file name -> (model, where it is published and what it is)
DOCUMENTS: dict[str, tuple[type[BaseModel], str]] = {
    "clip-manifest.schema.json": (ClipManifest, "<storyboard_id>/<shot_id>/<sha12>.json: one clip's lineage"),
    "reel-manifest.schema.json": (ReelManifest, "<storyboard_id>/reel/<sha12>.json: a reel's lineage"),
    "latest.schema.json": (LatestPointer, "<storyboard_id>/<shot_id or reel>/latest.json: the newest version"),
    "ledger.schema.json": (ProductionLedger, "<storyboard_id>/ledger.json: the storyboard's production ledger"),
}


def schema_for(model: type[BaseModel], published_as: str) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        **model.model_json_schema(mode="validation"),
        "description": f"Published as {published_as}.",
    }


def render(name: str) -> str:
    model, published_as = DOCUMENTS[name]
    return json.dumps(schema_for(model, published_as), indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    return [atomic_write_text(folder / name, render(name)) for name in DOCUMENTS]


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
