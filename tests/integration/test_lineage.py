"""Following lineage back: from a storyboard/shot, a published URI (local and S3) or a bare mp4 whose tags say
where its lineage is published, to the manifest; printed for people, or as JSON through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from shotline.cli import main
from shotline.cli.lineage import describe
from shotline.errors import InputError, PublishError
from shotline.lineage import trace
from shotline.manifest import ClipManifest
from shotline.publish import LocalPublisher, PublishedClip, PublishedMedia, S3Publisher, lineage_uri
from shotline.s3 import s3_client
from testkit.fakes.s3_server import S3Env
from testkit.mediakit import make_clip

SB, SHOT = "harbor-teaser", "s01-boats"


def manifest_for(media: PublishedMedia, request_id: str = "req-1") -> dict[str, Any]:
    """A complete, valid clip manifest for `media` (what published_clip writes, with made-up upstream)."""
    sha = "ab" * 32
    return ClipManifest.model_validate(
        {
            "storyboard": {"id": SB, "title": "Harbor", "file": f"{SB}/storyboard.yaml", "file_sha256": sha},
            "shot": {"id": media.shot_id, "index": 0, "spec": {"duration": 2, "caption": "Dawn"}, "spec_sha256": sha},
            "image": {"origin": "images/boats.png", "origin_kind": "path", "source_sha256": sha, "sha256": sha}
            | {"width": 1280, "height": 720},
            "prompt": {"template": None, "template_sha256": sha, "variables": {"subject": "boats"}, "text": "dolly in"},
            "generation": {
                "generator": "fal",
                "preview": False,
                "model": "xai/grok-imagine-video/v1.5/image-to-video",
                "request_id": request_id,
                "clip_key": sha,
                "cache_hit": False,
                "parameters": {"duration": 2, "resolution": "480p"},
                "timings": {"queue_s": 1.5, "inference_s": 20.0, "total_s": 23.0},
                "cost_usd": 0.17,
                "sha256": sha,
                "width": 854,
                "height": 480,
                "fps": 24,
                "duration_s": 2.0,
            },
            "post_processing": {"steps": [{"step": "fade"}, {"step": "encode"}], "encoder": {"video": {"crf": 20}}}
            | {"sha256": media.sha256, "width": 854, "height": 480, "duration_s": 2.0},
            "published": media.manifest_section(),
            "dagster": {"run_id": "run-1", "partition_key": f"{SB}__{media.shot_id}", "code_versions": {"a": "1"}},
        }
    ).model_dump(mode="json")


def tagged_clip(path: Path, tags: dict[str, str], seconds: float = 1.0) -> Path:
    meta = [arg for k, v in tags.items() for arg in ("-metadata", f"{k}={v}")]
    return make_clip(
        path,
        size=(320, 180),
        duration=seconds,
        audio=None,  # type: ignore[arg-type]
        faststart=False,
        extra=[*meta, "-movflags", "+faststart+use_metadata_tags"],
    )


@pytest.fixture
def published(tmp_path: Path) -> tuple[LocalPublisher, PublishedClip, Path]:
    """A clip whose mp4 carries its lineage tags, published to a local folder; and the mp4."""
    root = tmp_path / "pub"
    video = tagged_clip(
        tmp_path / "final.mp4", {"storyboard": SB, "shot": SHOT, "lineage": lineage_uri(root, SB, SHOT)}
    )
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8\xff\xe0jpeg")
    pub = LocalPublisher(root)
    return pub, pub.publish_clip(SB, SHOT, video, thumb, manifest_for), video


def test_from_storyboard_and_shot(published: tuple[LocalPublisher, PublishedClip, Path]) -> None:
    pub, clip, _ = published
    found = trace(f"{SB}/{SHOT}", pub.root)
    assert found.manifest_uri == clip.manifest.uri and found.found_via == "storyboard/shot"
    assert found.is_latest is True and found.manifest["generation"]["request_id"] == "req-1"
    text = describe(found)
    for expected in (
        f"{SB}/{SHOT}  (clip manifest v2",
        "storyboard  Harbor (harbor-teaser), harbor-teaser/storyboard.yaml",
        "image       images/boats.png (path)",
        "'dolly in'",
        "generation  fal xai/grok-imagine-video/v1.5/image-to-video, request req-1",
        "cost $0.17, queue 1.5 s, inference 20 s, total 23 s",
        "finishing   fade -> encode",
        f"published   video      {clip.video.uri}",
        "dagster     run run-1, partition harbor-teaser__s01-boats",
    ):
        assert expected in text, expected


@pytest.mark.parametrize("which", ["video", "thumbnail", "manifest", "latest", "folder"])
def test_from_a_published_uri(published: tuple[LocalPublisher, PublishedClip, Path], which: str) -> None:
    _, clip, _ = published
    uri = {
        "video": clip.video.uri,
        "thumbnail": clip.thumbnail_uri,
        "manifest": clip.manifest.uri,
        "latest": clip.latest.uri,
        "folder": clip.latest.uri.removesuffix("latest.json"),
    }[which]
    found = trace(str(uri), "/nowhere")  # a URI needs no publish destination
    assert found.manifest_uri == clip.manifest.uri and found.is_latest is True


def test_from_a_bare_mp4(tmp_path: Path, published: tuple[LocalPublisher, PublishedClip, Path]) -> None:
    pub, first, video = published
    bare = shutil.copy(video, tmp_path / "downloaded-somewhere.mp4")
    found = trace(str(bare), "/nowhere")  # the file's own tags lead to its lineage
    assert found.found_via == "mp4 tags" and found.manifest_uri == first.manifest.uri
    assert found.file is not None and found.file["matches_manifest"] and found.file["sha256"] == first.sha256
    assert found.file["tags"]["lineage"] == first.latest.uri

    # A newer take of the shot is published: the old file still leads to its own manifest, not to latest.
    retake = tagged_clip(
        tmp_path / "retake.mp4", {"storyboard": SB, "shot": SHOT, "lineage": first.latest.uri}, seconds=1.5
    )
    second = pub.publish_clip(SB, SHOT, retake, None, lambda m: manifest_for(m, "req-2"))
    old = trace(str(bare), "/nowhere")
    assert old.manifest_uri == first.manifest.uri and old.is_latest is False
    assert f"latest?     no: latest is {second.sha256[:12]}" in describe(old)
    assert trace(str(retake), "/nowhere").manifest["generation"]["request_id"] == "req-2"


def test_a_moved_tree_is_found_through_the_publish_destination(
    tmp_path: Path, published: tuple[LocalPublisher, PublishedClip, Path]
) -> None:
    pub, clip, video = published
    moved = tmp_path / "mirror"
    shutil.move(pub.root, moved)
    found = trace(str(video), moved)  # the tag points at the old place; SHOTLINE_PUBLISH_URI at the new one
    assert found.manifest_uri == (moved / SB / SHOT / f"{clip.sha12}.json").as_uri()
    assert found.notes and "not found at" in found.notes[0]


def test_what_cannot_be_traced(tmp_path: Path, published: tuple[LocalPublisher, PublishedClip, Path]) -> None:
    pub, clip, video = published
    untagged = tagged_clip(tmp_path / "untagged.mp4", {})
    with pytest.raises(InputError, match="no shotline lineage tags"):
        trace(str(untagged), pub.root)
    edited = tmp_path / "edited.mp4"
    edited.write_bytes(video.read_bytes() + b"\x00")  # same tags, other bytes: not what was published
    with pytest.raises(PublishError, match="has no published manifest"):
        trace(str(edited), pub.root)
    with pytest.raises(PublishError, match="nothing published"):
        trace(f"{SB}/s99-none", pub.root)
    with pytest.raises(InputError, match="neither"):
        trace("not a target", pub.root)
    Path(clip.manifest.uri.removeprefix("file://")).write_text(json.dumps({"kind": "clip", "schema_version": 2}))
    with pytest.raises(PublishError, match="does not fit the clip manifest schema"):
        trace(f"{SB}/{SHOT}", pub.root)


def test_from_an_s3_uri(s3_env: S3Env, tmp_path: Path) -> None:
    target = s3_env.uri("clips")
    video = tagged_clip(
        tmp_path / "final.mp4", {"storyboard": SB, "shot": SHOT, "lineage": lineage_uri(target, SB, SHOT)}
    )
    clip = S3Publisher(s3_env.bucket, "clips", s3_client()).publish_clip(SB, SHOT, video, None, manifest_for)
    for uri in (clip.video.uri, clip.latest.uri):
        assert trace(uri, "/nowhere").manifest_uri == clip.manifest.uri
    assert trace(str(video), "/nowhere").manifest_uri == clip.manifest.uri  # the tag names the bucket
    with pytest.raises(PublishError, match="nothing published"):
        trace(s3_env.uri(f"clips/{SB}/other/latest.json"), "/nowhere")


def test_cli(
    published: tuple[LocalPublisher, PublishedClip, Path], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    pub, clip, video = published
    monkeypatch.setenv("SHOTLINE_PUBLISH_URI", str(pub.root))
    assert main(["lineage", f"{SB}/{SHOT}"]) == 0
    assert "request req-1" in capsys.readouterr().out
    assert main(["lineage", str(video), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["found_via"] == "mp4 tags" and doc["file"]["matches_manifest"] is True
    assert ClipManifest.model_validate(doc["manifest"]).published.video.sha256 == clip.sha256
    assert main(["lineage", f"{SB}/s99-none"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "nothing published" in captured.err


def test_a_reel_mp4_is_found_through_the_publish_destination(tmp_path: Path) -> None:
    from shotline.manifest import ReelManifest

    reel = tagged_clip(tmp_path / "reel.mp4", {"storyboard": SB, "comment": f"shotline {SB} reel"})  # as cut_reel tags

    def manifest(media: PublishedMedia) -> dict[str, Any]:
        sha = "cd" * 32
        return ReelManifest.model_validate(
            {
                "storyboard": {"id": SB, "title": "Harbor", "file": f"{SB}/storyboard.yaml", "file_sha256": sha},
                "transition": "crossfade",
                "transition_seconds": 0.5,
                "clips": [
                    {"shot_id": SHOT, "sha256": sha, "manifest_uri": "s3://b/k.json", "manifest_sha256": sha}
                    | {"duration_s": 2.0, "generator": "fal", "cost_usd": 0.17}
                ],
                "total_cost_usd": 0.17,
                "post_processing": {"steps": [{"step": "join"}], "encoder": {}, "sha256": media.sha256}
                | {"width": 854, "height": 480, "duration_s": 1.0},
                "published": media.manifest_section(),
                "dagster": {"run_id": "r", "partition_key": SB, "code_versions": {"storyboard_reel": "2"}},
            }
        ).model_dump(mode="json")

    pub = LocalPublisher(tmp_path / "pub")
    published = pub.publish_reel(SB, reel, manifest)
    found = trace(str(reel), pub.root)
    assert found.kind == "reel" and found.manifest_uri == published.manifest.uri
    assert f"{SB}/reel  (reel manifest v2" in describe(found) and "1 clips, crossfade 0.5 s" in describe(found)
