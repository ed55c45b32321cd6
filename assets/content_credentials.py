"""Content credentials (C2PA) as the assets show and check them: what signing did (materialization metadata),
and the blocking checks that read each signed file back instead of trusting that signing worked: the manifest
is there, its hash binding holds, its actions and digital source type are what the records say was done, it
was signed by the configured signer, and the file kept its fast start. final_clip's check reads the file in the
working store; published_clip's and storyboard_reel's read the uploaded object back from the destination."""

from collections.abc import Callable
from typing import Any

import dagster as dg

from assets.deliverable_checks import deliverable_file
from assets.partitions import shots, storyboards
from assets.resources import CredentialsResource, PublisherResource, WorkspaceResource
from assets.upstream import latest_record
from shotline.credentials.manifest import Expectations, clip_expectations, reel_expectations
from shotline.credentials.report import SigningReport
from shotline.credentials.verification import Verification, problems, verify_bytes, verify_file
from shotline.errors import ShotlineError
from shotline.hashing import sha256_bytes
from shotline.publish import Publisher
from shotline.stage_records import FinishedClipRecord, GeneratedClipRecord, PublishedClipRecord, ReelRecord
from shotline.storyboard import split_partition_key

OFF = "content credentials are off (SHOTLINE_C2PA=off): nothing to verify"


def credentials_metadata(report: SigningReport | None) -> dict[str, Any]:
    """Materialization metadata of a signed deliverable (what the UI shows beside uri and sha256)."""
    if report is None:
        return {"content_credentials": "none: signing is off (SHOTLINE_C2PA=off)"}
    root = " (DEVELOPMENT root: not trusted elsewhere)" if report.development else ""
    return {
        "content_credentials": f"C2PA, signed by {report.signer}, {report.issuer}{root}",
        "c2pa_source_type": report.source_type.rsplit("/", 1)[-1],
        "c2pa_actions": dg.MetadataValue.json(report.actions),
        "c2pa_bytes_added": report.bytes_added,
        "c2pa_sign_ms": report.sign_ms,
    }


def _result(verification: Verification, expected: Expectations, extra: list[str] | None = None) -> dg.AssetCheckResult:
    found = [*(extra or []), *problems(verification, expected)]
    signer = verification.signer
    metadata: dict[str, Any] = {
        "state": verification.summary(),
        "signer": f"{signer.common_name}, {signer.issuer}" if signer else None,
        "digital_source_type": (verification.digital_source_type or "").rsplit("/", 1)[-1] or None,
        "actions": dg.MetadataValue.json([a.action for a in verification.actions]),
        "ingredients": dg.MetadataValue.json([f"{i.relationship}: {i.title}" for i in verification.ingredients]),
        "failing_codes": dg.MetadataValue.json(verification.failing_codes),
    }
    return dg.AssetCheckResult(
        passed=not found,
        description="; ".join(found) if found else f"content credentials {verification.summary()}, as expected",
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def _read_published(publisher: Publisher, uri: str, sha256: str) -> tuple[bytes | None, str | None]:
    data = publisher.read_bytes(publisher.key_for(uri))
    if data is None:
        return None, f"{uri} is not there"
    if sha256_bytes(data) != sha256:
        return None, f"{uri} read back does not hash to the recorded sha256 {sha256[:12]}"
    return data, None


# What a check found to verify: the file's credentials, what they should say and problems found on the way;
# or why there is nothing to verify (the check fails with that).
Found = tuple[Verification, Expectations, list[str]] | str
Inspect = Callable[[dg.AssetCheckExecutionContext, WorkspaceResource, PublisherResource, str | None], Found]


def content_credentials_check(
    asset: str, partitions_def: dg.PartitionsDefinition, description: str, inspect: Inspect
) -> dg.AssetChecksDefinition:
    """The blocking `content_credentials` check of `asset`: passes when signing is off; otherwise `inspect`
    (given the trust anchors) reads the signed file back, and the check compares what it holds with what is
    expected, signed by the configured signer."""

    def check(
        context: dg.AssetCheckExecutionContext,
        workspace: WorkspaceResource,
        publisher: PublisherResource,
        credentials: CredentialsResource,
    ) -> dg.AssetCheckResult:
        try:
            signer = credentials.signer()
            if signer is None:
                return dg.AssetCheckResult(passed=True, description=OFF)
            found = inspect(context, workspace, publisher, credentials.trust_anchors_pem())
            if isinstance(found, str):
                return dg.AssetCheckResult(passed=False, description=found)
            verification, expected, extra = found
            expected = expected.model_copy(update={"signer_serial": signer.keys.serial})
        except ShotlineError as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        return _result(verification, expected, extra)

    check.__name__ = f"{asset}_content_credentials"  # the op's name, as each check had its own function
    return dg.asset_check(
        asset=asset, name="content_credentials", partitions_def=partitions_def, blocking=True, description=description
    )(check)


def _final_clip(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, _: PublisherResource, anchors: str | None
) -> Found:
    store = workspace.store()
    final = latest_record(context.instance, store, FinishedClipRecord, context.partition_key)
    raw = latest_record(context.instance, store, GeneratedClipRecord, context.partition_key)
    video = deliverable_file(store, final.clip.sha256) if final else None
    if final is None or raw is None or video is None:
        return "the final clip's file is not in the working store"
    return verify_file(video, trust_anchors=anchors), _clip_expected(context.partition_key, final, raw), []


def _published_clip(
    context: dg.AssetCheckExecutionContext,
    workspace: WorkspaceResource,
    publisher: PublisherResource,
    anchors: str | None,
) -> Found:
    store, key = workspace.store(), context.partition_key
    published = latest_record(context.instance, store, PublishedClipRecord, key)
    final = latest_record(context.instance, store, FinishedClipRecord, key)
    raw = latest_record(context.instance, store, GeneratedClipRecord, key)
    if published is None or final is None or raw is None:
        return "published_clip has no materialization to check"
    video = published.published.video
    data, problem = _read_published(publisher.publisher(), video.uri, video.sha256)
    if data is None:
        return f"video: {problem}"
    extra = []
    if video.sha256 != final.clip.sha256:
        extra.append(f"the published video {video.sha256[:12]} is not the latest final clip {final.clip.sha256[:12]}")
    return verify_bytes(data, trust_anchors=anchors), _clip_expected(key, final, raw), extra


def _storyboard_reel(
    context: dg.AssetCheckExecutionContext,
    workspace: WorkspaceResource,
    publisher: PublisherResource,
    anchors: str | None,
) -> Found:
    reel = latest_record(context.instance, workspace.store(), ReelRecord, context.partition_key)
    if reel is None:
        return "storyboard_reel has no materialization to check"
    video = reel.published.video
    data, problem = _read_published(publisher.publisher(), video.uri, video.sha256)
    if data is None:
        return f"reel: {problem}"
    expected = reel_expectations(
        reel.reel.render,
        storyboard_id=context.partition_key,
        previews=[c.generator == "preview" for c in reel.clips],
    )
    return verify_bytes(data, trust_anchors=anchors), expected, []


def _clip_expected(key: str, final: FinishedClipRecord, raw: GeneratedClipRecord) -> Expectations:
    storyboard_id, shot_id = split_partition_key(key)
    return clip_expectations(
        final.clip.render,
        storyboard_id=storyboard_id,
        shot_id=shot_id,
        preview=raw.clip.result.preview,
        request_id=raw.clip.result.request_id,
    )


final_clip_content_credentials = content_credentials_check(
    "final_clip",
    shots,
    "The deliverable carries a signed C2PA manifest that holds (hash binding intact), with the digital "
    "source type and one action per edit the render records, signed by the configured signer, faststart kept.",
    _final_clip,
)
published_clip_content_credentials = content_credentials_check(
    "published_clip",
    shots,
    "The uploaded video, read back from the publish destination, carries the final clip's content "
    "credentials intact (uploading and republishing never rewrite it).",
    _published_clip,
)
storyboard_reel_content_credentials = content_credentials_check(
    "storyboard_reel",
    storyboards,
    "The published reel, read back, carries a signed C2PA manifest that holds: a composite "
    "(with trained algorithmic media when any clip was generated), each signed clip a valid ingredient placed "
    "once, signed by the configured signer, faststart kept.",
    _storyboard_reel,
)
