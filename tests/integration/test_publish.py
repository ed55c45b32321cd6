"""Publishing clips and reels to a local folder and to S3 (a real moto server on loopback)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig

from shotline.errors import InputError, MediaError, PublishError
from shotline.publish import (
    IMMUTABLE,
    LocalPublisher,
    PublishedMedia,
    S3Publisher,
    lineage_uri,
    publisher_for,
    verify_published,
)
from shotline.s3 import s3_client
from testkit.fakes.s3_server import S3Env

SB, SHOT = "harbor-teaser", "s01-boats"
MiB = 1 << 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, Path]:
    video = tmp_path / "final.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(50_000))
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2_000))
    return video, thumb


def doc(**fields: Any) -> Callable[[PublishedMedia], dict[str, Any]]:
    """A manifest of these fields and the media's published section."""
    return lambda media: {**fields, "published": media.manifest_section()}


def lineage(published: PublishedMedia) -> dict[str, Any]:
    return {"schema_version": 1, "shot": published.shot_id, "published": published.manifest_section()}


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- local ---------------------------------------------------------------------------------------------


def test_local_layout_and_latest(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, thumb = media
    root = tmp_path / "published"
    pub = publisher_for(root)
    assert isinstance(pub, LocalPublisher)
    clip = pub.publish_clip(SB, SHOT, video, thumb, lineage, generator="preview")

    vsha = sha256(video.read_bytes())
    s12 = vsha[:12]
    assert files_under(root) == sorted(
        f"{SB}/{SHOT}/{name}" for name in (f"{s12}.mp4", f"{s12}.jpg", f"{s12}.json", "latest.json")
    )
    folder = root / SB / SHOT
    assert (folder / f"{s12}.mp4").read_bytes() == video.read_bytes()
    assert (folder / f"{s12}.jpg").read_bytes() == thumb.read_bytes()

    assert clip.sha256 == vsha and clip.sha12 == s12
    assert clip.video_uri == (folder / f"{s12}.mp4").resolve().as_uri()
    assert clip.thumbnail_uri == (folder / f"{s12}.jpg").resolve().as_uri()
    assert clip.manifest.uri == (folder / f"{s12}.json").resolve().as_uri()
    assert clip.video.size == video.stat().st_size
    assert clip.thumbnail is not None and clip.thumbnail.sha256 == sha256(thumb.read_bytes())
    assert clip.url is None and clip.url_expires_at is None

    manifest = json.loads((folder / f"{s12}.json").read_text())
    assert manifest["published"]["video"] == {"uri": clip.video_uri, "sha256": vsha, "size": clip.video.size}
    assert manifest["published"]["thumbnail"]["sha256"] == clip.thumbnail.sha256
    assert manifest["published"]["manifest_uri"] == clip.manifest.uri
    assert clip.manifest.sha256 == sha256((folder / f"{s12}.json").read_bytes())

    latest = json.loads((folder / "latest.json").read_text())
    assert latest == pub.read_latest(SB, SHOT)
    assert latest["sha256"] == vsha
    assert latest["video"] == clip.video_uri
    assert latest["thumbnail"] == clip.thumbnail_uri
    assert latest["manifest"] == clip.manifest.uri
    assert latest["manifest_sha256"] == clip.manifest.sha256
    assert latest["generator"] == "preview"
    assert latest["files"] == {"video": f"{s12}.mp4", "thumbnail": f"{s12}.jpg", "manifest": f"{s12}.json"}
    assert datetime.fromisoformat(latest["published_at"]) == clip.published_at

    meta = clip.metadata()
    assert meta["uri"] == clip.video_uri and meta["sha256"] == vsha and meta["manifest_uri"] == clip.manifest.uri


def test_local_republish_skips_and_keeps_the_first_manifest(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, thumb = media
    pub = LocalPublisher(tmp_path / "pub")
    first = pub.publish_clip(SB, SHOT, video, thumb, doc(run="one"))
    mtime = Path(first.video.uri.removeprefix("file://")).stat().st_mtime_ns
    second = pub.publish_clip(SB, SHOT, video, thumb, doc(run="two"))
    assert second.video.skipped and second.thumbnail is not None and second.thumbnail.skipped
    assert second.manifest.skipped and second.manifest.sha256 == first.manifest.sha256
    assert not second.latest.skipped and second.published_at > first.published_at
    assert Path(first.video.uri.removeprefix("file://")).stat().st_mtime_ns == mtime
    assert json.loads(pub.read_bytes(f"{SB}/{SHOT}/{first.sha12}.json") or b"")["run"] == "one"


def test_local_new_version_moves_latest_and_keeps_the_old(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, thumb = media
    pub = LocalPublisher(tmp_path / "pub")
    old = pub.publish_clip(SB, SHOT, video, thumb, doc())
    video.write_bytes(video.read_bytes() + b"more")
    new = pub.publish_clip(SB, SHOT, video, thumb, doc())
    assert new.sha12 != old.sha12
    assert (pub.read_latest(SB, SHOT) or {})["sha256"] == new.sha256
    assert pub.read_bytes(old.video.key) is not None
    assert not [p for p in (tmp_path / "pub").rglob("*") if ".part" in p.name]


def test_local_refuses_to_overwrite_other_content(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, thumb = media
    pub = LocalPublisher(tmp_path / "pub")
    s12 = sha256(video.read_bytes())[:12]
    clash = tmp_path / "pub" / SB / SHOT / f"{s12}.mp4"
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"something else")
    with pytest.raises(PublishError, match="other content"):
        pub.publish_clip(SB, SHOT, video, thumb, doc())
    assert clash.read_bytes() == b"something else"
    assert pub.read_latest(SB, SHOT) is None


def test_a_failing_manifest_leaves_no_latest(tmp_path: Path, media: tuple[Path, Path]) -> None:
    def broken(_: PublishedMedia) -> dict[str, Any]:
        raise RuntimeError("lineage could not be built")

    pub = LocalPublisher(tmp_path / "pub")
    with pytest.raises(RuntimeError):
        pub.publish_clip(SB, SHOT, *media, broken)
    assert pub.read_latest(SB, SHOT) is None


def test_two_step_api(tmp_path: Path, media: tuple[Path, Path]) -> None:
    pub = LocalPublisher(tmp_path / "pub")
    placed = pub.put_media(SB, SHOT, *media, generator="fal")
    assert pub.read_latest(SB, SHOT) is None
    assert placed.manifest_uri.endswith(f"/{SB}/{SHOT}/{placed.sha12}.json")
    clip = pub.put_manifest(placed, {"published": placed.manifest_section(), "run_id": "r1"})
    assert clip.manifest.uri == placed.manifest_uri
    assert clip.latest.uri == placed.latest_uri
    assert (pub.read_latest(SB, SHOT) or {})["generator"] == "fal"


def test_reel_layout(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, _ = media
    root = tmp_path / "pub"
    reel = LocalPublisher(root).publish_reel(SB, video, doc(shots=[SHOT]))
    assert files_under(root) == sorted(
        [f"{SB}/reel/{reel.sha12}.mp4", f"{SB}/reel/{reel.sha12}.json", f"{SB}/reel/latest.json"]
    )
    manifest = json.loads((root / SB / "reel" / f"{reel.sha12}.json").read_text())
    assert manifest["shots"] == [SHOT]
    assert manifest["published"]["video"]["sha256"] == reel.sha256
    assert manifest["published"]["thumbnail"] is None


def test_refusals(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, thumb = media
    pub = LocalPublisher(tmp_path / "pub")
    with pytest.raises(InputError, match="reserved"):
        pub.publish_clip(SB, "reel", video, thumb, doc())
    for storyboard, shot in (("../up", SHOT), (SB, "Shot 1"), (SB, "a/b"), ("", SHOT)):
        with pytest.raises(InputError, match="slug"):
            pub.publish_clip(storyboard, shot, video, thumb, doc())
    with pytest.raises(MediaError, match="missing or empty"):
        pub.publish_clip(SB, SHOT, tmp_path / "absent.mp4", thumb, doc())
    with pytest.raises(MediaError, match=r"\.mp4"):
        pub.publish_clip(SB, SHOT, thumb, thumb, doc())
    assert not (tmp_path / "pub").exists()


def test_publisher_for() -> None:
    assert isinstance(publisher_for("file:///srv/clips%20out"), LocalPublisher)
    assert publisher_for("file:///srv/clips%20out").root == Path("/srv/clips out")  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="unsupported publish destination"):
        publisher_for("https://example.com/pub")
    with pytest.raises(InputError, match="invalid bucket"):
        publisher_for("s3://Not_A_Bucket/x")


# --- S3 ------------------------------------------------------------------------------------------------


def put_log(client: Any) -> list[tuple[str, str]]:
    """(operation, key) of every write the client sends, seen through botocore's own event hooks."""
    log: list[tuple[str, str]] = []
    for op in ("PutObject", "CreateMultipartUpload"):
        client.meta.events.register(
            f"before-parameter-build.s3.{op}",
            lambda params, _op=op, **_: log.append((_op, params["Key"])),
        )
    return log


def test_publisher_for_s3(s3_env: S3Env) -> None:
    pub = publisher_for(s3_env.uri("clips/"))
    assert isinstance(pub, S3Publisher)
    assert (pub.bucket, pub.prefix) == (s3_env.bucket, "clips")
    assert pub.root_uri == s3_env.uri("clips/")


def test_s3_layout_checksums_and_headers(s3_env: S3Env, media: tuple[Path, Path]) -> None:
    video, thumb = media
    pub = publisher_for(s3_env.uri("pub"))
    assert isinstance(pub, S3Publisher)
    writes = put_log(pub.client)
    clip = pub.publish_clip(SB, SHOT, video, thumb, lineage, generator="preview")

    s12 = sha256(video.read_bytes())[:12]
    base = f"pub/{SB}/{SHOT}"
    keys = [f"{base}/{s12}.mp4", f"{base}/{s12}.jpg", f"{base}/{s12}.json", f"{base}/latest.json"]
    listed = s3_env.client.list_objects_v2(Bucket=s3_env.bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(keys)
    assert [k for _, k in writes] == keys  # latest.json last
    assert clip.video_uri == s3_env.uri(keys[0])
    assert clip.manifest.uri == s3_env.uri(keys[2])
    assert clip.latest.uri == s3_env.uri(keys[3])

    expected = {
        keys[0]: (video.read_bytes(), "video/mp4", IMMUTABLE),
        keys[1]: (thumb.read_bytes(), "image/jpeg", IMMUTABLE),
        keys[2]: (None, "application/json", IMMUTABLE),
        keys[3]: (None, "application/json", "no-cache"),
    }
    for key, (local, content_type, cache_control) in expected.items():
        obj = s3_env.client.get_object(Bucket=s3_env.bucket, Key=key, ChecksumMode="ENABLED")
        body = obj["Body"].read()
        if local is not None:
            assert body == local
        assert obj["ContentType"] == content_type
        assert obj["CacheControl"] == cache_control
        assert obj["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert obj["Metadata"]["sha256"] == sha256(body)
        assert obj["Metadata"]["storyboard"] == SB and obj["Metadata"]["shot"] == SHOT

    assert s3_env.client.head_object(Bucket=s3_env.bucket, Key=keys[0])["Metadata"]["generator"] == "preview"
    assert clip.video.sha256 == sha256(video.read_bytes())
    assert clip.thumbnail is not None and clip.thumbnail.sha256 == sha256(thumb.read_bytes())
    manifest_body = s3_env.client.get_object(Bucket=s3_env.bucket, Key=keys[2])["Body"].read()
    assert clip.manifest.sha256 == sha256(manifest_body)
    manifest = json.loads(manifest_body)
    assert manifest["published"]["video"] == {
        "uri": clip.video_uri,
        "sha256": clip.sha256,
        "size": video.stat().st_size,
    }
    assert "X-Amz-Signature" not in manifest_body.decode()  # expiring URLs stay out of lineage

    latest = pub.read_latest(SB, SHOT)
    assert latest is not None
    assert (latest["video"], latest["thumbnail"], latest["manifest"]) == (
        clip.video_uri,
        clip.thumbnail_uri,
        clip.manifest.uri,
    )
    assert latest["sha256"] == clip.sha256 and latest["generator"] == "preview"


def test_s3_presigned_urls_serve_the_same_bytes(s3_env: S3Env, media: tuple[Path, Path]) -> None:
    video, thumb = media
    clip = S3Publisher(s3_env.bucket, "", s3_client(), url_expires_s=3600).publish_clip(SB, SHOT, video, thumb, doc())
    assert clip.url is not None and clip.thumbnail_url is not None
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in clip.url and "X-Amz-Expires=3600" in clip.url
    assert httpx.get(clip.url).content == video.read_bytes()
    assert httpx.get(clip.thumbnail_url).content == thumb.read_bytes()
    assert clip.url_expires_at is not None
    assert abs(clip.url_expires_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=5)
    assert clip.metadata()["url"] == clip.url


def test_s3_republish_writes_only_latest(s3_env: S3Env, media: tuple[Path, Path]) -> None:
    video, thumb = media
    pub = S3Publisher(s3_env.bucket, "p", s3_client())
    first = pub.publish_clip(SB, SHOT, video, thumb, doc(run="one"))
    writes = put_log(pub.client)
    second = pub.publish_clip(SB, SHOT, video, thumb, doc(run="two"))
    assert writes == [("PutObject", f"p/{SB}/{SHOT}/latest.json")]
    assert second.video.skipped and second.manifest.skipped
    assert second.thumbnail is not None and second.thumbnail.skipped
    assert second.manifest.sha256 == first.manifest.sha256
    assert second.video.sha256 == first.video.sha256


def test_s3_multipart_video_is_verified(s3_env: S3Env, tmp_path: Path) -> None:
    video = tmp_path / "long.mp4"
    video.write_bytes(os.urandom(11 * MiB))
    transfer = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, preferred_transfer_client="classic"
    )
    pub = S3Publisher(s3_env.bucket, "", s3_client(), transfer=transfer)
    writes = put_log(pub.client)
    clip = pub.publish_reel(SB, video, doc(kind="reel"))
    assert writes[0] == ("CreateMultipartUpload", f"{SB}/reel/{clip.sha12}.mp4")
    body = s3_env.client.get_object(Bucket=s3_env.bucket, Key=f"{SB}/reel/{clip.sha12}.mp4")["Body"].read()
    assert sha256(body) == clip.sha256 == sha256(video.read_bytes())
    # A multipart object reports the composite checksum; republishing still recognises it as identical.
    writes.clear()
    again = pub.publish_reel(SB, video, doc(kind="reel"))
    assert again.video.skipped
    assert writes == [("PutObject", f"{SB}/reel/latest.json")]


def test_s3_refuses_to_overwrite_other_content(s3_env: S3Env, media: tuple[Path, Path]) -> None:
    video, thumb = media
    key = f"{SB}/{SHOT}/{sha256(video.read_bytes())[:12]}.mp4"
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=key, Body=b"impostor", ChecksumAlgorithm="SHA256")
    with pytest.raises(PublishError, match="other content"):
        S3Publisher(s3_env.bucket, "", s3_client()).publish_clip(SB, SHOT, video, thumb, doc())
    assert s3_env.client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read() == b"impostor"


def test_s3_missing_bucket_is_a_publish_error(s3_env: S3Env, media: tuple[Path, Path]) -> None:
    with pytest.raises(PublishError, match="no-such-bucket-abc") as excinfo:
        S3Publisher("no-such-bucket-abc", "", s3_client()).publish_clip(SB, SHOT, *media, doc())
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(excinfo.value)


def test_manifest_section_fits_the_lineage_manifest(tmp_path: Path, media: tuple[Path, Path]) -> None:
    from shotline.manifest import PublishedLineage

    placed = LocalPublisher(tmp_path / "pub").put_media(SB, SHOT, *media)
    lineage = PublishedLineage.model_validate(placed.manifest_section())
    assert lineage.video.sha256 == placed.sha256
    assert lineage.manifest_uri == placed.manifest_uri


# --- latest.json is written last: a failure before it leaves the old pointer ----------------------------


class PointerFails(LocalPublisher):
    """A local publisher whose disk refuses the latest.json write (and only that one)."""

    def _put_bytes(self, data: bytes, key: str, **kwargs: Any):  # type: ignore[override]
        if key.endswith("/latest.json"):
            raise PublishError(f"disk full writing {key}")
        return super()._put_bytes(data, key, **kwargs)


def test_local_failure_before_the_pointer_keeps_the_old_one(tmp_path: Path, media: tuple[Path, Path]) -> None:
    video, thumb = media
    old = LocalPublisher(tmp_path / "pub").publish_clip(SB, SHOT, video, thumb, doc(v=1))
    before = (tmp_path / "pub" / SB / SHOT / "latest.json").read_bytes()
    video.write_bytes(video.read_bytes() + b"second take")
    with pytest.raises(PublishError, match="disk full"):
        PointerFails(tmp_path / "pub").publish_clip(SB, SHOT, video, thumb, doc(v=2))
    new12 = sha256(video.read_bytes())[:12]
    folder = tmp_path / "pub" / SB / SHOT
    assert (folder / f"{new12}.mp4").read_bytes() == video.read_bytes()  # the new clip went up...
    assert (folder / f"{new12}.json").is_file()
    assert (folder / "latest.json").read_bytes() == before  # ...but readers still see the old one, whole
    assert json.loads(before)["sha256"] == old.sha256
    assert not [p for p in folder.iterdir() if ".part" in p.name]


def test_s3_failure_before_the_pointer_keeps_the_old_one(s3_env: S3Env, media: tuple[Path, Path]) -> None:
    video, thumb = media
    pub = S3Publisher(s3_env.bucket, "p", s3_client())
    old = pub.publish_clip(SB, SHOT, video, thumb, doc(v=1))
    latest_key = f"p/{SB}/{SHOT}/latest.json"
    before = s3_env.client.get_object(Bucket=s3_env.bucket, Key=latest_key)["Body"].read()

    def refuse_latest(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == latest_key:
            raise ConnectionError("network dropped before the pointer")

    writes = put_log(pub.client)
    pub.client.meta.events.register("before-parameter-build.s3.PutObject", refuse_latest)
    video.write_bytes(video.read_bytes() + b"second take")
    new12 = sha256(video.read_bytes())[:12]
    with pytest.raises(ConnectionError):
        pub.publish_clip(SB, SHOT, video, thumb, doc(v=2))
    assert [k for _, k in writes] == [f"p/{SB}/{SHOT}/{new12}.{ext}" for ext in ("mp4", "jpg", "json")] + [latest_key]
    stored = s3_env.client.get_object(Bucket=s3_env.bucket, Key=f"p/{SB}/{SHOT}/{new12}.mp4")["Body"].read()
    assert stored == video.read_bytes()
    assert s3_env.client.get_object(Bucket=s3_env.bucket, Key=latest_key)["Body"].read() == before
    assert (pub.read_latest(SB, SHOT) or {})["sha256"] == old.sha256


# --- documents beside the clips, content-addressed files, the lineage location --------------------------


def test_documents_are_replaced_only_when_they_change(s3_env: S3Env, tmp_path: Path) -> None:
    for pub in (S3Publisher(s3_env.bucket, "docs", s3_client()), LocalPublisher(tmp_path / "pub")):
        first = pub.put_document(SB, "ledger.csv", b"a,b\n1,2\n")
        assert not first.skipped and first.content_type.startswith("text/csv")
        same = pub.put_document(SB, "ledger.csv", b"a,b\n1,2\n")
        assert same.skipped and same.sha256 == first.sha256
        changed = pub.put_document(SB, "ledger.csv", b"a,b\n1,3\n")
        assert not changed.skipped and pub.read_bytes(f"{SB}/ledger.csv") == b"a,b\n1,3\n"
        with pytest.raises(ValueError, match="slug"):
            pub.put_document(SB, "../escape.csv", b"x")
    head = s3_env.client.head_object(Bucket=s3_env.bucket, Key=f"docs/{SB}/ledger.csv", ChecksumMode="ENABLED")
    assert head["CacheControl"] == "no-cache"  # it changes: readers must revalidate
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"a,b\n1,3\n").digest()).decode()
    assert changed.url is None  # the last one was local
    url = S3Publisher(s3_env.bucket, "docs", s3_client()).put_document(SB, "ledger.csv", b"a,b\n1,3\n").url
    assert url is not None and httpx.get(url).content == b"a,b\n1,3\n"


def test_content_addressed_files_are_never_overwritten(s3_env: S3Env, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.jpg"
    sheet.write_bytes(b"\xff\xd8\xff" + os.urandom(3000))
    key = f"{SB}/reel/contact-sheet-{sha256(sheet.read_bytes())[:12]}.jpg"
    pub = S3Publisher(s3_env.bucket, "", s3_client())
    first = pub.put_file(SB, key, sheet, content_type="image/jpeg")
    assert not first.skipped and first.url is not None and first.url_expires_at is not None
    assert httpx.get(first.url).content == sheet.read_bytes()
    assert pub.put_file(SB, key, sheet, content_type="image/jpeg").skipped
    head = s3_env.client.head_object(Bucket=s3_env.bucket, Key=key)
    assert head["CacheControl"] == IMMUTABLE and head["ContentType"] == "image/jpeg"
    sheet.write_bytes(b"other bytes")
    with pytest.raises(PublishError, match="other content"):
        pub.put_file(SB, key, sheet, content_type="image/jpeg")
    with pytest.raises(ValueError, match="not under"):
        pub.put_file(SB, "elsewhere/x.jpg", sheet, content_type="image/jpeg")


def test_lineage_uri_is_where_latest_json_goes(s3_env: S3Env, tmp_path: Path, media: tuple[Path, Path]) -> None:
    for target in (s3_env.uri("clips/"), s3_env.uri(""), str(tmp_path / "pub"), (tmp_path / "pub").as_uri()):
        clip = publisher_for(target).publish_clip(SB, SHOT, *media, doc())
        assert lineage_uri(target, SB, SHOT) == clip.latest.uri
    with pytest.raises(InputError, match="slug"):
        lineage_uri(str(tmp_path), SB, "Not a slug")


# --- verifying what is published ------------------------------------------------------------------------


def objects_of(clip: Any) -> dict[str, tuple[str, str, int]]:
    return {
        "video": (clip.video.uri, clip.video.sha256, clip.video.size),
        "thumbnail": (clip.thumbnail.uri, clip.thumbnail.sha256, clip.thumbnail.size),
        "manifest": (clip.manifest.uri, clip.manifest.sha256, clip.manifest.size),
    }


def test_s3_verification_uses_checksums_and_catches_damage(s3_env: S3Env, media: tuple[Path, Path]) -> None:
    pub = S3Publisher(s3_env.bucket, "v", s3_client())
    clip = pub.publish_clip(SB, SHOT, *media, doc(v=1))
    checks = verify_published(pub, objects_of(clip), latest=(clip.latest.uri, clip.sha256))
    assert [c.problem for c in checks] == [None] * 4
    assert [c.method for c in checks[:3]] == ["checksum"] * 3  # a HEAD each, nothing downloaded

    video_key = f"v/{SB}/{SHOT}/{clip.sha12}.mp4"
    damaged = bytearray(media[0].read_bytes())
    damaged[-1] ^= 0xFF  # same size, one byte off
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=video_key, Body=bytes(damaged), ChecksumAlgorithm="SHA256")
    s3_env.client.delete_object(Bucket=s3_env.bucket, Key=f"v/{SB}/{SHOT}/{clip.sha12}.jpg")
    problems = [c.problem for c in verify_published(pub, objects_of(clip)) if c.problem]
    assert len(problems) == 2
    assert problems[0].startswith("video: ") and f"expected {clip.sha256}" in problems[0]
    assert problems[1].startswith("thumbnail: ") and "missing" in problems[1]

    s3_env.client.put_object(Bucket=s3_env.bucket, Key=video_key, Body=b"short")  # no checksum at all
    (check,) = verify_published(pub, {"video": objects_of(clip)["video"]})
    assert check.problem == f"video: {s3_env.uri(video_key)} is 5 bytes, expected {clip.video.size}"


def test_s3_verification_of_a_multipart_object_reads_it_back(s3_env: S3Env, tmp_path: Path) -> None:
    video = tmp_path / "long.mp4"
    video.write_bytes(os.urandom(11 * MiB))
    transfer = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, preferred_transfer_client="classic"
    )
    pub = S3Publisher(s3_env.bucket, "", s3_client(), transfer=transfer)
    reel = pub.publish_reel(SB, video, doc(kind="reel"))
    (check,) = verify_published(pub, {"video": (reel.video.uri, reel.sha256, reel.video.size)})
    assert check.ok and check.method == "read back" and check.sha256 == reel.sha256
    (wrong,) = verify_published(pub, {"video": (reel.video.uri, "0" * 64, reel.video.size)})
    assert wrong.problem and "expected 000000" in wrong.problem


def test_local_verification_reads_back(tmp_path: Path, media: tuple[Path, Path]) -> None:
    pub = LocalPublisher(tmp_path / "pub")
    clip = pub.publish_clip(SB, SHOT, *media, doc())
    assert all(c.ok for c in verify_published(pub, objects_of(clip), latest=(clip.latest.uri, clip.sha256)))
    (tmp_path / "pub" / SB / SHOT / f"{clip.sha12}.json").write_text("{}")
    problems = [c.problem for c in verify_published(pub, objects_of(clip), latest=(clip.latest.uri, "f" * 64))]
    assert problems[:2] == [None, None]
    assert problems[2] is not None and problems[2].startswith("manifest: ") and "bytes, expected" in problems[2]
    assert problems[3] is not None and f"points at {clip.sha256}" in problems[3]
    elsewhere = verify_published(pub, {"video": ("s3://other-bucket/x.mp4", clip.sha256, 1)})
    assert elsewhere[0].problem is not None and "not under the publish destination" in elsewhere[0].problem
