"""The Definitions load, have the design's shape, and pass Dagster's own validation of workspace.yaml."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from pipelines.definitions import build_definitions, defs

REPO = Path(__file__).resolve().parents[1]


def test_definitions_load_with_the_design_graph() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip", "storyboard_reel"} | {
        "contact_sheet",
        "production_ledger",
    }
    chain = ["source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip"]
    for upstream, downstream in itertools.pairwise(chain):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys
    for key in chain:
        node = graph.get(dg.AssetKey(key))
        assert node.partitions_def.name == "shots" and node.code_version
    for key in ("storyboard_reel", "contact_sheet", "production_ledger"):
        assert graph.get(dg.AssetKey(key)).partitions_def.name == "storyboards"
    assert graph.get(dg.AssetKey("raw_clip")).pools == {"fal"}
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"clip_job", "reel_job", "review_job"}
    assert {s.name for s in defs.sensors} == {"storyboard_sensor", "reel_sensor", "clip_automation_sensor"} | {
        "review_sensor",
        "archive_sensor",
    }


def test_fal_key_is_bound_as_an_env_var_never_a_value() -> None:
    resources = build_definitions({"FAL_KEY": "sk-secret-value"}).resources
    generator = resources["generator"]
    assert generator.kind == "fal"
    assert "sk-secret-value" not in repr(generator)
    assert "sk-secret-value" not in repr(resources)


def test_dagster_cli_validates_the_workspace(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAL_KEY"} | {"DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr
