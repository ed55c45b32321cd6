"""What the Dagster UI shows people: a small inline JPEG preview on every per-shot stage, the facts people read
first under their names, the contact sheet on the reel and the sheet, the ledger's totals above its table;
and every machine key the design lists, unchanged."""

from __future__ import annotations

import base64
import io
import random
import re
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pytest
from PIL import Image

from shotline.previews import (
    PREVIEW_MAX_BYTES,
    PREVIEW_WIDTH,
    THUMBNAIL_WIDTH,
    ClipCard,
    clip_link,
    image_preview,
    jpeg_preview,
    preview_markdown,
)
from shotline.storyboard import load_storyboard
from testkit.fakes.s3_server import S3Env
from testkit.pipeline_runner import run_storyboard
from testkit.storyboard_factory import tiny_storyboard

DATA_URI = re.compile(r"^!\[[^\]]*\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)$")
MACHINE_KEYS = {
    "source_image": {"uri", "sha256", "width", "height", "record_key", "record_kind"},
    "clip_prompt": {"uri", "sha256", "prompt", "record_key", "record_kind"},
    "raw_clip": {
        "uri", "sha256", "generator", "cost_usd", "cache_hit", "duration_s", "width", "height", "record_key",
        "record_kind", "preview",
    },
    "final_clip": {"uri", "sha256", "thumbnail_uri", "width", "height", "duration_s", "record_key", "record_kind"},
    "published_clip": {"uri", "sha256", "manifest_uri", "thumbnail_uri", "spec_sha256", "record_key", "record_kind"},
}  # fmt: skip


def preview_jpeg(markdown: str) -> Image.Image:
    found = DATA_URI.match(markdown)
    assert found, markdown[:120]
    data = base64.b64decode(found.group(1))
    assert len(data) <= PREVIEW_MAX_BYTES * 2, len(data)  # a few tens of KB at most, never the video
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def test_a_preview_fits_its_budget_whatever_the_picture(tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (1920, 1080), random.Random(7).randbytes(1920 * 1080 * 3))
    noise.save(tmp_path / "noise.png")
    jpeg = jpeg_preview(tmp_path / "noise.png")
    assert len(jpeg) <= PREVIEW_MAX_BYTES
    with Image.open(io.BytesIO(jpeg)) as small:
        assert small.format == "JPEG" and small.width <= PREVIEW_WIDTH
        assert abs(small.width / small.height - 16 / 9) < 0.02
    uri = image_preview(tmp_path / "noise.png")
    assert uri.startswith("data:image/jpeg;base64,")
    assert preview_markdown(uri, "a [tricky]\nalt") == f"![a tricky alt]({uri})"


def test_the_card_names_what_people_read_first() -> None:
    card = ClipCard(
        storyboard_id="harbor",
        shot_id="s01",
        take=2,
        caption="Dawn at the harbor",
        prompt="slow dolly-in on boats",
        duration_s=4.5,
        width=1280,
        height=720,
        generator="fal",
        model="xai/grok-imagine-video/v1.5/image-to-video",
        cost_usd=0.75,
        cache_hit=True,
        fal_request_id="req-123",
    )
    facts = dict(card.facts())
    assert list(facts) == [
        "Storyboard", "Shot", "Take", "Caption", "Prompt", "Duration", "Frame size", "Generator", "Cost",
        "fal request",
    ]  # fmt: skip
    assert facts["Frame size"] == "1280×720" and facts["Duration"] == "4.50 s"
    assert facts["Generator"] == "fal · xai/grok-imagine-video/v1.5/image-to-video"
    assert facts["Cost"].startswith("$0.75 when generated; $0.00 this time")
    assert dict(ClipCard(storyboard_id="a", shot_id="b").facts()) == {"Storyboard": "a", "Shot": "b"}


def test_a_link_to_s3_is_presigned_with_its_expiry(s3_env: S3Env) -> None:
    url, expires = clip_link(s3_env.uri("clips/a.mp4"))
    assert url.startswith(s3_env.endpoint) and "X-Amz-Signature=" in url and expires is not None
    assert clip_link("file:///clips/a.mp4") == ("file:///clips/a.mp4", None)


def test_every_stage_shows_its_picture_and_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    root = tmp_path / "storyboards"
    storyboard = load_storyboard(tiny_storyboard(root, "alpha", n_shots=2))
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
    }
    with dg.instance_for_test() as instance:
        out = run_storyboard(storyboard, env, instance)
        shot = storyboard.shots[0]
        md = out[shot.partition_key]
        for asset, keys in MACHINE_KEYS.items():
            assert keys <= set(md[asset]), (asset, keys - set(md[asset]))
        for asset in ("source_image", "raw_clip", "final_clip", "published_clip"):
            entries = md[asset]
            assert list(entries)[:2] == ["Thumbnail", "Preview image"], asset  # what people read first, first
            assert len(entries["Thumbnail"]) < 1000  # Dagster shows markdown inline below 1,000 characters
            assert 0 < preview_jpeg(entries["Thumbnail"]).width <= THUMBNAIL_WIDTH
            assert THUMBNAIL_WIDTH < preview_jpeg(entries["Preview image"]).width <= PREVIEW_WIDTH
            assert (entries["Storyboard"], entries["Shot"], entries["Take"]) == ("alpha", shot.id, "1")
            assert entries["Caption"] == "Shot 1"
        for asset in ("raw_clip", "final_clip", "published_clip"):
            entries = md[asset]
            assert entries["Prompt"] == "slow push-in on thing 1"
            assert entries["Duration"].endswith(" s") and entries["Frame size"] == "854×480"
            assert entries["Generator"].startswith("preview") and entries["Cost"] == "$0.00"
        published = md["published_clip"]
        assert published["Open clip"] == published["uri"] and urlparse(published["uri"]).scheme == "file"
        assert "Link expires" not in published  # a local file does not expire

        reel = out[storyboard.id]["storyboard_reel"]
        assert next(iter(reel)) == "Contact sheet"
        assert preview_jpeg(reel["Contact sheet"]).width > PREVIEW_WIDTH  # readable: wider than a preview
        for asset in ("contact_sheet", "production_ledger"):
            record = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records[0]
            entries = record.asset_materialization.metadata
            if asset == "contact_sheet":
                assert next(iter(entries)) == "Contact sheet"
                preview_jpeg(entries["Contact sheet"].value)
            else:
                first, table = next(iter(entries)), list(entries).index("ledger")
                assert first == "Totals" and table > 0  # the totals above the table
                totals = entries["Totals"].value
                assert len(totals) < 1000  # Dagster shows markdown inline below 1,000 characters
                assert "2 shots (2 published)" in totals and "$0.00" in totals


def test_a_clip_published_to_s3_opens_through_a_presigned_link(
    tmp_path: Path, s3_env: S3Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    root = tmp_path / "storyboards"
    storyboard = load_storyboard(tiny_storyboard(root, "alpha", n_shots=1))
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_PUBLISH_URI": s3_env.uri("clips"),
    }
    with dg.instance_for_test() as instance:
        md = run_storyboard(storyboard, env, instance, reel=False)[storyboard.shots[0].partition_key]
    published = md["published_clip"]
    assert published["Open clip"] == published["url"] and "X-Amz-Signature=" in published["url"]
    assert published["Link expires"] == published["url_expires_at"]
    assert published["uri"].startswith(s3_env.uri("clips/alpha/s01/"))
    body = s3_env.client.get_object(Bucket=s3_env.bucket, Key=urlparse(published["uri"]).path.lstrip("/"))
    assert body["ContentLength"] > 0
