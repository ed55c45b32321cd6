"""contact_sheet: per storyboard, one image with every shot's thumbnail, id, caption, duration, generator and
cost, in shot order, published beside the reel (`<storyboard_id>/reel/contact-sheet-<sha12>.jpg`).

Its own asset rather than part of storyboard_reel: a producer reviews a storyboard while it is being made,
so the sheet is drawn with whatever shots are finished (the others as "not generated yet"), whereas the reel
needs every shot; and redrawing it never recuts the reel, nor the other way round.
"""

from pathlib import Path

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import storyboards
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import latest_record, write_record
from shotline.contact_sheet import SheetTile, render_contact_sheet
from shotline.publish import REEL, PublishedClip, Publisher
from shotline.stage_records import ContactSheetRecord, FinishedClipRecord, GeneratedClipRecord, PublishedClipRecord
from shotline.store import WorkStore
from shotline.storyboard import Shot, Storyboard, partition_key

CODE_VERSION = "1"


def _thumbnail(published: PublishedClip, store: WorkStore, pub: Publisher, scratch: Path) -> Path | None:
    """The published thumbnail: from the working store, else read back from where it was published."""
    if published.thumbnail is None:
        return None
    sha = published.thumbnail.sha256
    local = store.get(sha, ".jpg")
    if local is not None:
        return local.path
    data = pub.read_bytes(pub.key_for(published.thumbnail.uri))
    if data is None:
        return None
    path = scratch / f"{sha}.jpg"
    path.write_bytes(data)
    return path


def _tile(
    instance: dg.DagsterInstance, sb: Storyboard, shot: Shot, store: WorkStore, pub: Publisher, scratch: Path
) -> SheetTile:
    key = partition_key(sb.id, shot.id)
    published = latest_record(instance, store, PublishedClipRecord, key)
    if published is None:
        return SheetTile(shot_id=shot.id, index=shot.index, caption=shot.caption, note="not published yet")
    final = latest_record(instance, store, FinishedClipRecord, key)
    raw = latest_record(instance, store, GeneratedClipRecord, key)
    thumbnail = _thumbnail(published.published, store, pub, scratch)
    same_clip = final is not None and final.clip.sha256 == published.published.sha256
    return SheetTile(
        shot_id=shot.id,
        index=shot.index,
        caption=shot.caption,
        duration_s=final.clip.render.duration_s if final and same_clip else None,
        generator=raw.clip.result.generator if raw else None,
        cost_usd=raw.clip.result.cost_usd if raw else None,
        thumbnail=thumbnail,
        note=None if thumbnail else "thumbnail missing",
    )


@dg.asset(
    partitions_def=storyboards,
    code_version=CODE_VERSION,
    group_name="reels",
    kinds={"pillow", "s3"},
    deps=[dg.AssetDep("published_clip", partition_mapping=dg.AllPartitionMapping())],
    description="Every shot's thumbnail, id, caption, duration, generator and cost on one image, in shot order, "
    "published beside the reel for review at a glance.",
)
def contact_sheet(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.MaterializeResult:
    with dagster_failures():
        sb = workspace.storyboard(context.partition_key)
        store = workspace.store()
        pub = publisher.publisher()
        with store.scratch(f"contact-sheet-{sb.id}") as work:
            tiles = [_tile(context.instance, sb, shot, store, pub, work) for shot in sb.shots]
            drawn = render_contact_sheet(sb.title, sb.id, tiles, work / "sheet.jpg")
            stored = store.put_file(work / "sheet.jpg", ".jpg")
        published = pub.put_file(
            sb.id, f"{sb.id}/{REEL}/contact-sheet-{stored.sha256[:12]}.jpg", stored.path, content_type="image/jpeg"
        )
        record = write_record(
            store,
            ContactSheetRecord(
                sheet=published.without_link(),
                shots=drawn["shots"],
                missing=drawn["missing"],
                width=drawn["width"],
                height=drawn["height"],
            ),
        )
    metadata: dict[str, object] = {
        "uri": published.uri,
        "sha256": published.sha256,
        "size": published.size,
        "shots": len(tiles),
        "missing": ", ".join(drawn["missing"]) or "none",
        "width": drawn["width"],
        "height": drawn["height"],
        **record,
    }
    if published.url and published.url_expires_at:
        metadata["url"] = dg.MetadataValue.url(published.url)
        metadata["url_expires_at"] = dg.MetadataValue.timestamp(published.url_expires_at)
    else:
        metadata["url"] = dg.MetadataValue.url(published.uri)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.sha256))
