"""The JSON Schemas in schemas/ are the ones the pydantic models generate, and hold what the issue lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shotline.schemas import DOCUMENTS, render, write_schemas

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_committed_schema_is_current(name: str) -> None:
    committed = SCHEMAS / name
    assert committed.is_file(), f"{name} is not committed: run `python -m shotline.schemas`"
    assert committed.read_text() == render(name), (
        f"schemas/{name} is stale: the models changed. Run `python -m shotline.schemas` and commit the result "
        "(and bump shotline.manifest.SCHEMA_VERSION if a field was removed, renamed or changed meaning)."
    )


def test_a_changed_model_makes_the_check_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import Field, create_model

    from shotline import schemas
    from shotline.manifest import ClipManifest

    write_schemas(tmp_path)
    grown = create_model("ClipManifest", __base__=ClipManifest, extra_field=(int, Field(0)))
    monkeypatch.setitem(schemas.DOCUMENTS, "clip-manifest.schema.json", (grown, "test"))
    assert (tmp_path / "clip-manifest.schema.json").read_text() != render("clip-manifest.schema.json")


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    for option in node.get("anyOf", []):
        if "$ref" in option:
            return schema["$defs"][option["$ref"].rsplit("/", 1)[1]]
    return node


def fields_at(schema: dict[str, Any], path: str) -> set[str]:
    node: dict[str, Any] = schema
    for part in path.split(".") if path else []:
        node = resolve(schema, node["properties"][part])
    return set(node["properties"])


# What the issue asks a clip's manifest to hold, by where it sits in the document.
CLIP_FIELDS = {
    "": {"schema_version", "storyboard", "shot", "image", "prompt", "generation", "post_processing", "published"}
    | {"dagster"},
    "storyboard": {"file", "file_sha256"},
    "shot": {"spec", "spec_sha256"},
    "image": {"origin", "sha256"},
    "prompt": {"template", "template_sha256", "variables", "text"},
    "generation": {"generator", "model", "request_id", "parameters", "timings", "cost_usd"},
    "generation.timings": {"queue_s", "inference_s"},
    "post_processing": {"steps", "encoder"},
    "published": {"video", "thumbnail", "manifest_uri"},
    "published.video": {"uri", "sha256", "size"},
    "dagster": {"run_id", "code_versions", "upstream_data_versions"},
}


@pytest.mark.parametrize(("path", "expected"), sorted(CLIP_FIELDS.items()))
def test_clip_manifest_schema_holds_every_listed_field(path: str, expected: set[str]) -> None:
    schema = json.loads((SCHEMAS / "clip-manifest.schema.json").read_text())
    assert expected <= fields_at(schema, path)


def test_reel_manifest_lists_each_clips_manifest_and_sha256() -> None:
    schema = json.loads((SCHEMAS / "reel-manifest.schema.json").read_text())
    clip = schema["$defs"]["ReelClip"]
    assert {"shot_id", "sha256", "manifest_uri", "manifest_sha256"} <= set(clip["properties"])
    assert schema["properties"]["clips"]["type"] == "array"
    assert fields_at(schema, "") >= {"schema_version", "storyboard", "published", "dagster", "total_cost_usd"}
