"""Stage records: each stage's typed record round-trips through the working store (local, and the shared S3
store on the local S3 server) under the sha256 of its JSON; a missing, altered or foreign record, or a
materialization without one, is refused naming the stage and the key. Then the assets themselves write them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.clip_prompt import clip_prompt
from assets.source_image import source_image as source_image_asset
from assets.upstream import RECORD_KEY, RECORD_KIND, latest_record
from pipelines.definitions import build_resources
from shotline.config import Settings
from shotline.errors import MediaError
from shotline.finishing import CutReel, FinishedClip
from shotline.generators.base import GenerationResult
from shotline.generators.cache import GeneratedClip
from shotline.hashing import stable_hash
from shotline.images import ingest_image
from shotline.manifest import ReelClip
from shotline.media.clip_facts import ClipFacts
from shotline.media.postprocess import FinishResult
from shotline.media.reel import Chapter, ReelResult
from shotline.production_ledger import build_ledger, ledger_row
from shotline.prompts import RenderedPrompt
from shotline.publish import PublishedClip, PublishedObject
from shotline.stage_records import (
    ContactSheetRecord,
    FinishedClipRecord,
    GeneratedClipRecord,
    ProductionLedgerRecord,
    PromptRecord,
    PublishedClipRecord,
    ReelRecord,
    SourcedImageRecord,
    StageRecord,
    StageRecordError,
)
from shotline.store import WorkStore, open_store
from shotline.store_s3 import S3WorkStore
from testkit.fakes.s3_server import S3Env
from testkit.storyboard_factory import tiny_storyboard, write_image

PREFIX = "work"
SHA = {name: stable_hash(name) for name in ("raw", "final", "thumb", "reel", "manifest", "latest", "sheet", "csv")}
EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


def s3_store(s3_env: S3Env, home: Path) -> S3WorkStore:
    store = open_store(s3_env.uri(PREFIX), home, cache_max_bytes=1 << 30)
    assert isinstance(store, S3WorkStore)
    return store


def published_object(name: str, suffix: str) -> PublishedObject:
    key = f"sb/s01/{SHA[name][:12]}{suffix}"
    return PublishedObject(
        uri=f"s3://clips/{key}",
        key=key,
        sha256=SHA[name],
        size=1234,
        content_type="application/octet-stream",
        url=f"https://s3.example/{key}?X-Amz-Signature=abc",
        url_expires_at=EXPIRES,
    )


def published_clip(video: str = "final") -> PublishedClip:
    return PublishedClip(
        storyboard_id="sb",
        shot_id="s01",
        sha256=SHA[video],
        sha12=SHA[video][:12],
        video=published_object(video, ".mp4"),
        thumbnail=published_object("thumb", ".jpg"),
        manifest_uri=f"s3://clips/sb/s01/{SHA[video][:12]}.json",
        latest_uri="s3://clips/sb/s01/latest.json",
        url_expires_at=EXPIRES,
        generator="preview",
        manifest=published_object("manifest", ".json"),
        latest=published_object("latest", ".json"),
        published_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    )


def generated_clip(folder: Path) -> GeneratedClip:
    video = folder / "raw.mp4"
    facts = ClipFacts(
        width=854,
        height=480,
        fps=24.0,
        frames=48,
        duration_s=2.0,
        container_duration_s=2.0,
        has_audio=True,
        video_codec="h264",
        audio_codec="aac",
        size_bytes=1000,
    )
    result = GenerationResult(
        video_path=video,
        width=854,
        height=480,
        fps=24.0,
        duration_s=2.0,
        generator="fal",
        model="xai/grok-imagine-video/v1.5/image-to-video",
        request_id="req-1",
        cost_usd=0.1,
        timings={"queue_s": 1.5, "submitted_at": "2026-05-01T12:00:00+00:00"},
        parameters={"duration": 2, "resolution": "480p"},
        checked=facts,
    )
    return GeneratedClip(
        clip_key=stable_hash("clip"),
        result=result,
        sha256=SHA["raw"],
        path=video,
        size=1000,
        cache_hit=False,
        generated_at="2026-05-01T12:00:00+00:00",
        checked=facts,
    )


def finished_clip(folder: Path) -> FinishedClip:
    render = FinishResult(
        width=1280,
        height=720,
        fps=24.0,
        duration_s=2.0,
        has_caption=True,
        steps=[{"step": "fit", "mode": "cover"}, {"step": "silent_audio"}],
        encoder={"video": {"crf": 20}},
        ffmpeg_commands=["ffmpeg -i <source> <out>"],
    )
    return FinishedClip(
        sha256=SHA["final"],
        path=folder / "final.mp4",
        size=2000,
        thumbnail_sha256=SHA["thumb"],
        thumbnail_path=folder / "thumb.jpg",
        render=render,
        thumbnail={"step": "thumbnail", "at_s": 1.0},
    )


def cut_reel(folder: Path) -> CutReel:
    render = ReelResult(
        width=1280,
        height=720,
        fps=24.0,
        duration_s=3.7,
        transition="crossfade",
        transition_seconds=0.3,
        chapters=[Chapter(title="s01", start_s=0.0, end_s=2.0), Chapter(title="s02", start_s=1.7, end_s=3.7)],
        steps=[{"step": "join"}],
        encoder={},
        ffmpeg_commands=[],
    )
    return CutReel(
        sha256=SHA["reel"],
        path=folder / "reel.mp4",
        size=5000,
        thumbnail_sha256=SHA["thumb"],
        thumbnail_path=folder / "reel.jpg",
        render=render,
    )


def sample_records(store: WorkStore, tmp_path: Path) -> list[StageRecord]:
    """One record of each kind; the image is really sourced, into `store`."""
    board = tmp_path / "board"
    write_image(board / "images" / "a.png", (640, 360))
    image = ingest_image("images/a.png", board, store, storyboard_id="sb", shot_id="s01")
    prompt = RenderedPrompt(
        text="slow push-in on boats", template_name=None, template_source="slow push-in on {{ subject }}",
        template_sha256=stable_hash("template"), variables={"subject": "boats"},
    )  # fmt: skip
    reel_clip = ReelClip(
        shot_id="s01", sha256=SHA["final"], manifest_uri="s3://clips/sb/s01/m.json", duration_s=2.0,
        generator="fal", cost_usd=0.1,
    )  # fmt: skip
    ledger = build_ledger(
        "sb", "Storyboard", [ledger_row("sb", "s01", 0, spec_sha256="c" * 64, published=None, raw=None, last_run=None)]
    )
    work = tmp_path / "work"
    return [
        SourcedImageRecord.of(image),
        PromptRecord(prompt=prompt, sha256=stable_hash("prompt file")),
        GeneratedClipRecord.of(generated_clip(work)),
        FinishedClipRecord.of(finished_clip(work)),
        PublishedClipRecord.of(published_clip(), spec_sha256="c" * 64),
        ReelRecord.of(cut_reel(work), published_clip("reel"), [reel_clip]),
        ContactSheetRecord(
            sheet=published_object("sheet", ".jpg").without_link(), shots=["s01"], missing=[], width=900, height=600
        ),
        ProductionLedgerRecord(
            ledger=ledger,
            json_document=published_object("latest", ".json").without_link(),
            csv_document=published_object("csv", ".csv").without_link(),
        ),
    ]


def assert_refused(error: pytest.ExceptionInfo[StageRecordError], stage: str, key: str) -> None:
    assert stage in str(error.value) and key in str(error.value), str(error.value)


# --- round trips ----------------------------------------------------------------------------------------


def test_each_record_round_trips_through_a_local_store(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    records = sample_records(store, tmp_path)
    assert len({r.kind for r in records}) == len(records)
    for record in records:
        key = record.write(store)
        assert key == stable_hash(record.document()) and len(key) == 64
        stored = store.record_path(record.kind, key)
        assert json.loads(stored.read_text())["kind"] == record.kind
        again = type(record).read(store, key)
        assert again == record and type(again) is type(record)
        before = stored.read_bytes()
        assert record.write(store) == key and stored.read_bytes() == before  # idempotent


def test_records_do_not_say_where_a_host_keeps_the_store(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    for record in sample_records(store, tmp_path):
        text = json.dumps(record.document())
        assert str(store.root) not in text and str(tmp_path / "work") not in text, record.kind
        assert "X-Amz-Signature" not in text and 'url_expires_at": "2030' not in text  # links expire: left out


def test_each_record_round_trips_through_the_shared_s3_store(s3_env: S3Env, tmp_path: Path) -> None:
    writer = s3_store(s3_env, tmp_path / "host-a")
    records = sample_records(writer, tmp_path)
    keys = [record.write(writer) for record in records]
    listed = s3_env.client.list_objects_v2(Bucket=s3_env.bucket, Prefix=f"{PREFIX}/records/")
    assert {obj["Key"] for obj in listed["Contents"]} == {
        f"{PREFIX}/records/{r.kind}/{k}.json" for r, k in zip(records, keys, strict=True)
    }
    # another host, with an empty home, reads every record from the bucket
    reader = s3_store(s3_env, tmp_path / "host-b")
    for record, key in zip(records, keys, strict=True):
        assert type(record).read(reader, key) == record
    image = records[0]
    assert isinstance(image, SourcedImageRecord)
    found = image.image_in(reader)
    assert found.sha256 == image.image.sha256 and found.path.is_relative_to(tmp_path / "host-b")


def test_a_missing_or_unreadable_record_in_the_bucket_names_stage_and_key(s3_env: S3Env, tmp_path: Path) -> None:
    store = s3_store(s3_env, tmp_path / "home")
    key = stable_hash("never written")
    with pytest.raises(StageRecordError, match="re-materialize final_clip") as missing:
        FinishedClipRecord.read(store, key)
    assert_refused(missing, "final_clip", key)
    s3_env.client.put_object(
        Bucket=s3_env.bucket,
        Key=f"{PREFIX}/records/finished_clip/{key}.json",
        Body=b"{not json",
        ChecksumAlgorithm="SHA256",
    )
    with pytest.raises(StageRecordError, match="not valid JSON") as garbled:
        FinishedClipRecord.read(store, key)
    assert_refused(garbled, "final_clip", key)


# --- refusals -------------------------------------------------------------------------------------------


def test_a_missing_record_names_the_stage_and_the_key(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    key = stable_hash("never written")
    with pytest.raises(StageRecordError, match=r"is not in the working store.*re-materialize raw_clip") as error:
        GeneratedClipRecord.read(store, key)
    assert_refused(error, "raw_clip", key)


def test_an_altered_record_is_refused(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    record = PromptRecord(
        prompt=RenderedPrompt(
            text="a", template_name=None, template_source="a", template_sha256="0" * 64, variables={}
        ),
        sha256="1" * 64,
    )
    key = record.write(store)
    path = store.record_path(record.kind, key)
    path.write_text(path.read_text().replace('"text": "a"', '"text": "b"'))
    with pytest.raises(StageRecordError, match="does not match its key") as altered:
        PromptRecord.read(store, key)
    assert_refused(altered, "clip_prompt", key)
    path.write_text("{not json")
    with pytest.raises(StageRecordError, match="not valid JSON") as garbled:
        PromptRecord.read(store, key)
    assert_refused(garbled, "clip_prompt", key)


def test_a_record_of_another_kind_or_shape_is_refused(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    prompt = PromptRecord(
        prompt=RenderedPrompt(
            text="a", template_name=None, template_source="a", template_sha256="0" * 64, variables={}
        ),
        sha256="1" * 64,
    )
    foreign = prompt.key()
    store.put_record(SourcedImageRecord.kind, foreign, prompt.document())
    with pytest.raises(StageRecordError, match="is a 'rendered_prompt' record, not a 'sourced_image' one") as error:
        SourcedImageRecord.read(store, foreign)
    assert_refused(error, "source_image", foreign)

    shapeless = {"kind": SourcedImageRecord.kind, "image": {"origin": "images/a.png"}}
    key = stable_hash(shapeless)
    store.put_record(SourcedImageRecord.kind, key, shapeless)
    with pytest.raises(StageRecordError, match=r"not a valid sourced_image record \(image\.origin_kind: Field") as bad:
        SourcedImageRecord.read(store, key)
    assert_refused(bad, "source_image", key)


def test_a_key_that_is_not_a_sha256_is_refused_before_the_store_is_read(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    with pytest.raises(StageRecordError, match=re.escape("final_clip: '../../secrets' is not a record key")):
        FinishedClipRecord.read(store, "../../secrets")


def test_a_record_whose_file_is_gone_says_what_to_re_materialize(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    raw = GeneratedClipRecord.of(generated_clip(tmp_path))
    with pytest.raises(MediaError, match=rf"the raw clip {SHA['raw'][:12]} is gone .*: re-materialize raw_clip"):
        raw.video_in(store)
    final = FinishedClipRecord.of(finished_clip(tmp_path))
    assert final.silent
    with pytest.raises(MediaError, match="re-materialize final_clip"):
        final.thumbnail_in(store)


# --- through Dagster ------------------------------------------------------------------------------------


def test_a_materialization_without_a_readable_record_is_refused(tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", ["sb__s01"])
        assert latest_record(instance, store, SourcedImageRecord, "sb__s01") is None
        # what an instance that ran the previous version holds: metadata, no record_key
        instance.report_runless_asset_event(
            dg.AssetMaterialization("source_image", partition="sb__s01", metadata={"sha256": SHA["raw"]})
        )
        with pytest.raises(StageRecordError, match=r"has no record_key .*re-materialize source_image"):
            latest_record(instance, store, SourcedImageRecord, "sb__s01")
        gone = stable_hash("gone")
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "source_image", partition="sb__s01", metadata={RECORD_KEY: gone, RECORD_KIND: "sourced_image"}
            )
        )
        with pytest.raises(StageRecordError) as missing:
            latest_record(instance, store, SourcedImageRecord, "sb__s01")
        assert_refused(missing, "source_image", gone)


def test_the_assets_write_their_records_to_the_shared_store(s3_env: S3Env, tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "alpha", n_shots=1)
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_STORE_URI": s3_env.uri(PREFIX),
        "SHOTLINE_GENERATOR": "preview",
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", ["alpha__s01"])
        result = dg.materialize(
            [source_image_asset, clip_prompt],
            partition_key="alpha__s01",
            instance=instance,
            resources=build_resources(Settings.from_env(env)),
        )
        assert result.success
        elsewhere = s3_store(s3_env, tmp_path / "other-host")
        image = latest_record(instance, elsewhere, SourcedImageRecord, "alpha__s01")
        prompt = latest_record(instance, elsewhere, PromptRecord, "alpha__s01")
    assert image is not None and prompt is not None
    (image_md,) = [m.metadata for m in result.asset_materializations_for_node("source_image")]
    (prompt_md,) = [m.metadata for m in result.asset_materializations_for_node("clip_prompt")]
    assert image_md[RECORD_KIND].value == "sourced_image" and image_md[RECORD_KEY].value == image.key()
    assert image_md["sha256"].value == image.image.sha256 == image.data_version
    assert image_md["origin"].value == image.image.origin == "images/s01.png"
    assert prompt_md[RECORD_KEY].value == prompt.key() and prompt_md["sha256"].value == prompt.sha256
    assert prompt_md["prompt"].value == prompt.prompt.text == "slow push-in on thing 1"
    assert "lineage" not in image_md and "lineage" not in prompt_md  # the record holds it now
