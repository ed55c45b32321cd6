"""clip_prompt: render the shot's prompt from its template and variables (Jinja2 sandbox)."""

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import shots
from assets.resources import WorkspaceResource
from assets.upstream import write_record
from shotline.prompts import render_prompt
from shotline.stage_records import PromptRecord

# 2: the materialization points at a PromptRecord (record_key) instead of carrying `lineage`
CODE_VERSION = "2"


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"jinja"},
    deps=["source_image"],
    description="The prompt the generator is sent, rendered from the shot's template (or inline prompt) and "
    "its variables.",
)
def clip_prompt(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard, shot = workspace.shot(context.partition_key)
        rendered = render_prompt(storyboard, shot)
        store = workspace.store()
        stored = store.put_bytes(rendered.model_dump_json(indent=2).encode(), ".prompt.json")
        record = write_record(store, PromptRecord(prompt=rendered, sha256=stored.sha256))
    return dg.MaterializeResult(
        metadata={
            "uri": stored.uri,
            "sha256": stored.sha256,
            "prompt": rendered.text,
            "template": rendered.template_name or "(inline)",
            "template_sha256": rendered.template_sha256,
            **record,
        },
        data_version=dg.DataVersion(stored.sha256),
    )
