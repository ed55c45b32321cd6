"""The whole chain through Dagster: the demo storyboard with the preview generator and a local publish folder,
and again with fal (the fake server over HTTP) publishing to S3 (the local S3 server). Every published mp4 is
decoded and held to the shot's spec."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import httpx
import pytest

from shotline.manifest import ClipManifest, ReelManifest
from shotline.media.probe import decode_check, probe
from shotline.storyboard import Storyboard, load_storyboard
from testkit.pipeline_runner import run_storyboard

REPO = Path(__file__).resolve().parents[2]
DEMO = load_storyboard(REPO / "storyboards" / "harbor-teaser")
FRAME = {"landscape": (1280, 720), "portrait": (720, 1280), "square": (720, 720)}
ONE_FRAME = 1 / 24 + 1e-3


def check_clip(path: Path, storyboard: Storyboard, shot_id: str) -> None:
    shot = storyboard.shot(shot_id)
    info = probe(path)
    decode_check(path)
    assert (info.width, info.height) == FRAME[shot.format]
    assert abs(info.duration_s - shot.kept_duration) <= ONE_FRAME, (shot_id, info.duration_s)
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.has_audio and info.audio_codec == "aac" and info.audio_rate == 48000


def expected_reel_duration(storyboard: Storyboard) -> float:
    kept = [s.kept_duration for s in storyboard.shots]
    return sum(kept) - (len(kept) - 1) * storyboard.reel.transition_seconds


def test_demo_storyboard_with_preview_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    published = tmp_path / "published"
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(REPO / "storyboards"),
        "SHOTLINE_PUBLISH_URI": str(published),
    }
    with dg.instance_for_test() as instance:
        first = run_storyboard(DEMO, env, instance)
        for shot in DEMO.shots:
            md = first[shot.partition_key]
            raw = md["raw_clip"]
            assert raw["generator"] == "preview" and raw["preview"] is True and raw["cost_usd"] == 0.0
            assert raw["cache_hit"] is False and "fal_request_id" not in raw
            for asset in md.values():
                assert asset["uri"] and len(asset["sha256"]) == 64
            folder = published / DEMO.id / shot.id
            latest = json.loads((folder / "latest.json").read_text())
            sha12 = latest["sha256"][:12]
            assert sorted(p.name for p in folder.iterdir()) == sorted(
                [f"{sha12}.mp4", f"{sha12}.jpg", f"{sha12}.json", "latest.json"]
            )
            check_clip(folder / f"{sha12}.mp4", DEMO, shot.id)
            manifest = ClipManifest.model_validate_json((folder / f"{sha12}.json").read_text())
            assert manifest.generation.preview and manifest.generation.generator == "preview"
            assert manifest.shot.spec_sha256 == DEMO.shot_spec_hash(shot)
            assert manifest.published.video.sha256 == latest["sha256"]
            assert manifest.prompt.text == md["clip_prompt"]["prompt"]
            assert manifest.dagster.run_id and manifest.dagster.code_versions["raw_clip"]
        reel_md = first[DEMO.id]["storyboard_reel"]
        reel = Path(urlparse(reel_md["uri"]).path)
        info = probe(reel)
        decode_check(reel)
        assert (info.width, info.height) == (1280, 720) and info.has_audio
        assert abs(info.duration_s - expected_reel_duration(DEMO)) <= 2 * ONE_FRAME
        assert [c.title for c in info.chapters] == [s.id for s in DEMO.shots]
        reel_manifest = ReelManifest.model_validate_json((reel.with_suffix(".json")).read_text())
        assert [c.shot_id for c in reel_manifest.clips] == [s.id for s in DEMO.shots]

        # A second run rebuilds nothing: every stage comes from the working store.
        again = run_storyboard(DEMO, env, instance)
        for shot in DEMO.shots:
            md = again[shot.partition_key]
            assert md["raw_clip"]["cache_hit"] is True and md["final_clip"]["cache_hit"] is True
            assert md["published_clip"]["sha256"] == first[shot.partition_key]["published_clip"]["sha256"]
        assert again[DEMO.id]["storyboard_reel"]["sha256"] == reel_md["sha256"]


def test_demo_storyboard_on_fal_publishing_to_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fal, s3_env
) -> None:
    fake_fal.queue_polls, fake_fal.progress_polls = 1, 1
    monkeypatch.setenv("FAL_KEY", fake_fal.key)
    env = {
        "FAL_KEY": fake_fal.key,
        "SHOTLINE_FAL_QUEUE_URL": fake_fal.url,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(REPO / "storyboards"),
        "SHOTLINE_PUBLISH_URI": f"s3://{s3_env.bucket}/clips",
    }
    with dg.instance_for_test() as instance:
        first = run_storyboard(DEMO, env, instance)
        assert len(fake_fal.submits) == len(DEMO.shots)
        for shot in DEMO.shots:
            md = first[shot.partition_key]
            raw = md["raw_clip"]
            assert raw["generator"] == "fal" and raw["preview"] is False
            assert raw["fal_request_id"] in fake_fal.jobs
            expected = {"480p": 0.08, "720p": 0.14}[shot.resolution] * shot.duration + 0.01
            assert raw["cost_usd"] == pytest.approx(expected)
            # The still reached fal through fal storage (uploaded once, by content), not inline and not from S3.
            submitted = fake_fal.job(raw["fal_request_id"]).payload
            [upload] = [u for u in fake_fal.uploads if u.access_url == submitted["image_url"]]
            assert upload.access_url.startswith(f"{fake_fal.cdn_url}/files/")
            assert upload.sha256 == md["source_image"]["sha256"] and upload.content_type == "image/png"
            prefix = f"clips/{DEMO.id}/{shot.id}/"
            keys = {o["Key"] for o in s3_env.client.list_objects_v2(Bucket=s3_env.bucket, Prefix=prefix)["Contents"]}
            latest = json.loads(
                s3_env.client.get_object(Bucket=s3_env.bucket, Key=prefix + "latest.json")["Body"].read()
            )
            sha12 = latest["sha256"][:12]
            assert keys == {prefix + n for n in (f"{sha12}.mp4", f"{sha12}.jpg", f"{sha12}.json", "latest.json")}
            published = md["published_clip"]
            assert published["manifest_uri"] == f"s3://{s3_env.bucket}/{prefix}{sha12}.json"
            video = tmp_path / f"{shot.id}.mp4"
            video.write_bytes(httpx.get(published["url"]).content)  # the presigned link works
            check_clip(video, DEMO, shot.id)
            manifest = ClipManifest.model_validate_json(
                s3_env.client.get_object(Bucket=s3_env.bucket, Key=prefix + f"{sha12}.json")["Body"].read()
            )
            assert manifest.generation.request_id == raw["fal_request_id"]
            assert manifest.generation.cost_usd == pytest.approx(expected)
        reel_md = first[DEMO.id]["storyboard_reel"]
        assert reel_md["uri"].startswith(f"s3://{s3_env.bucket}/clips/{DEMO.id}/reel/")
        assert len(fake_fal.uploads) == len({s.image for s in DEMO.shots})  # one upload per distinct still
        everything = s3_env.client.list_objects_v2(Bucket=s3_env.bucket)["Contents"]
        assert not [o["Key"] for o in everything if "/_inputs/" in o["Key"]]  # no stills presigned from S3

        # Unchanged inputs: no new paid request, no new upload.
        again = run_storyboard(DEMO, env, instance, reel=False)
        assert len(fake_fal.submits) == len(DEMO.shots) and len(fake_fal.uploads) == len({s.image for s in DEMO.shots})
        assert all(again[s.partition_key]["raw_clip"]["cache_hit"] for s in DEMO.shots)
        assert all(again[s.partition_key]["raw_clip"]["cost_usd"] == 0.0 for s in DEMO.shots)
