"""contact_sheet: per storyboard, one image with every shot's thumbnail, id, caption, duration, generator,
cost and review state, in shot order, published beside the reel (`<storyboard_id>/reel/contact-sheet-<sha12>.jpg`).
A shot with several published takes gets a row with its takes side by side, each with its review state.

Its own asset rather than part of storyboard_reel: a producer reviews a storyboard while it is being made,
so the sheet is drawn with whatever shots are finished (the others as "not generated yet"), whereas the reel
needs every shot; and redrawing it never recuts the reel, nor the other way round.
"""

from pathlib import Path
from typing import Any

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import storyboards
from assets.presentation import link_metadata, sheet_metadata
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import latest_record, write_record
from shotline.contact_sheet import SheetTake, SheetTile, render_contact_sheet
from shotline.publish import REEL, PublishedClip, Publisher
from shotline.review import AWAITING, ReviewBook, Verdict
from shotline.stage_records import ContactSheetRecord, FinishedClipRecord, GeneratedClipRecord, PublishedClipRecord
from shotline.store import WorkStore
from shotline.storyboard import Shot, Storyboard, partition_key
from shotline.takes import PublishedTake, TakeBook, latest_by_take

CODE_VERSION = "2"  # 2: takes side by side, review states


def _thumbnail(published: PublishedClip, store: WorkStore, pub: Publisher, scratch: Path) -> Path | None:
    """The published thumbnail: from the working store, else read back from where it was published."""
    if published.thumbnail is None:
        return None
    return _thumbnail_file(published.thumbnail.sha256, published.thumbnail.uri, store, pub, scratch)


def _thumbnail_file(sha: str, uri: str, store: WorkStore, pub: Publisher, scratch: Path) -> Path | None:
    local = store.get(sha, ".jpg")
    if local is not None:
        return local.path
    data = pub.read_bytes(pub.key_for(uri))
    if data is None:
        return None
    path = scratch / f"{sha}.jpg"
    path.write_bytes(data)
    return path


def _other_takes(
    takes: list[PublishedTake],
    verdicts: dict[tuple[str, str], Verdict],
    store: WorkStore,
    pub: Publisher,
    scratch: Path,
) -> list[SheetTake]:
    """Each published take's deliverable published last, with its review state."""
    return [
        SheetTake(
            take=t.take,
            review=verdicts.get((t.shot_id, t.sha256), AWAITING).label(),
            duration_s=t.duration_s,
            generator=t.generator,
            cost_usd=t.cost_usd,
            thumbnail=_thumbnail_file(t.thumbnail_sha256, t.thumbnail_uri, store, pub, scratch)
            if t.thumbnail_sha256 and t.thumbnail_uri
            else None,
        )
        for t in latest_by_take(takes).values()
    ]


def _tile(
    instance: dg.DagsterInstance,
    sb: Storyboard,
    shot: Shot,
    store: WorkStore,
    pub: Publisher,
    scratch: Path,
    review: tuple[list[PublishedTake], dict[tuple[str, str], Verdict]],
) -> SheetTile:
    key = partition_key(sb.id, shot.id)
    published = latest_record(instance, store, PublishedClipRecord, key)
    if published is None:
        return SheetTile(shot_id=shot.id, index=shot.index, caption=shot.caption, note="not published yet")
    final = latest_record(instance, store, FinishedClipRecord, key)
    raw = latest_record(instance, store, GeneratedClipRecord, key)
    generated = published.generation or (raw.clip if raw else None)
    thumbnail = _thumbnail(published.published, store, pub, scratch)
    same_clip = final is not None and final.clip.sha256 == published.published.sha256
    takes, verdicts = review
    mine = [t for t in takes if t.shot_id == shot.id]
    return SheetTile(
        shot_id=shot.id,
        index=shot.index,
        caption=shot.caption,
        duration_s=final.clip.render.duration_s if final and same_clip else None,
        generator=generated.result.generator if generated else None,
        cost_usd=generated.result.cost_usd if generated else None,
        thumbnail=thumbnail,
        note=None if thumbnail else "thumbnail missing",
        take=published.take,
        review=verdicts.get((shot.id, published.published.sha256), AWAITING).label(),
        other_takes=[t for t in _other_takes(mine, verdicts, store, pub, scratch) if t.take != published.take],
    )


def draw_contact_sheet(
    instance: dg.DagsterInstance, workspace: WorkspaceResource, sb: Storyboard, pub: Publisher, work: Path
) -> tuple[Path, dict[str, Any], list[SheetTile]]:
    """The storyboard's contact sheet as it stands, drawn into `work`: the file, what was drawn, the tiles."""
    store, db = workspace.store(), workspace.database()
    review = (TakeBook(db).for_storyboard(sb.id), ReviewBook(db).verdicts(sb.id))
    tiles = [_tile(instance, sb, shot, store, pub, work, review) for shot in sb.shots]
    drawn = render_contact_sheet(sb.title, sb.id, tiles, work / "sheet.jpg")
    return work / "sheet.jpg", drawn, tiles


@dg.asset(
    partitions_def=storyboards,
    code_version=CODE_VERSION,
    group_name="reels",
    kinds={"pillow", "s3"},
    deps=[dg.AssetDep("published_clip", partition_mapping=dg.AllPartitionMapping())],
    description="One image of every shot (thumbnail, caption, duration, generator, cost, takes and review state), "
    "published beside the reel, to review a storyboard at a glance.",
)
def contact_sheet(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.MaterializeResult:
    with dagster_failures():
        sb = workspace.storyboard(context.partition_key)
        store = workspace.store()
        pub = publisher.publisher()
        with store.scratch(f"contact-sheet-{sb.id}") as work:
            sheet, drawn, tiles = draw_contact_sheet(context.instance, workspace, sb, pub, work)
            stored = store.put_file(sheet, ".jpg")
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
        **sheet_metadata(stored.path, f"{sb.id} contact sheet"),
        "uri": published.uri,
        "sha256": published.sha256,
        "size": published.size,
        "shots": len(tiles),
        "missing": ", ".join(drawn["missing"]) or "none",
        "takes": dg.MetadataValue.json(drawn["takes"]),
        "width": drawn["width"],
        "height": drawn["height"],
        **record,
    }
    # a local sheet links to its file: there is no presigned link to give
    metadata |= link_metadata(published.url_expires_at, url=published.url or published.uri)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.sha256))
