"""Sourcing shot images from the storyboard folder, over HTTP(S) and from S3; validation, normalisation."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from shotline.errors import InputError, MediaError
from shotline.images import (
    SourcedImage,
    SourceUnavailable,
    check_image,
    image_url_for_fal,
    ingest_image,
    stored_image,
)
from shotline.netguard import UrlPolicy
from shotline.store import WorkStore
from testkit.fakes.s3_server import S3Env
from tests.integration.test_netguard import Server, hostile_handler, serve

SB = "harbor-teaser"
SHOT = "s01-boats"
RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)
# The test servers listen on plain http on loopback, which the default policy refuses: allow exactly that.
LOOPBACK = UrlPolicy(allow_http=True, allow_hosts=("127.0.0.1",))


# --- helpers ------------------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def marked(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A blue image with a red square in its top-left corner, to see where orientation puts it."""
    im = Image.new("RGB", size, BLUE)
    im.paste(RED, (0, 0, size[0] // 4, size[1] // 4))
    return im.convert(mode) if mode != "RGB" else im


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


@pytest.fixture
def board(tmp_path: Path) -> Path:
    folder = tmp_path / "storyboards" / SB
    (folder / "images").mkdir(parents=True)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> WorkStore:
    return WorkStore(tmp_path / "home")


def put(board: Path, name: str, data: bytes) -> str:
    path = board / "images" / name
    path.write_bytes(data)
    return f"images/{name}"


def source(spec: str, board: Path, store: WorkStore, **kwargs: object) -> SourcedImage:
    return ingest_image(spec, board, store, storyboard_id=SB, shot_id=SHOT, **kwargs)  # type: ignore[arg-type]


def opened(img: SourcedImage) -> Image.Image:
    im = Image.open(img.path)
    im.load()
    return im


# --- from the storyboard folder ------------------------------------------------------------------------


def test_landscape_png(board: Path, store: WorkStore) -> None:
    data = encode(marked((640, 360)), "PNG")
    img = source(put(board, "land.png", data), board, store)
    assert img.origin == "images/land.png"
    assert img.origin_kind == "path"
    assert img.resolved == str((board / "images" / "land.png").resolve())
    assert (img.width, img.height) == (640, 360)
    assert img.source_size == (640, 360)
    assert img.source_format == "PNG"
    assert img.conversions == []
    assert img.path.is_file() and img.path.is_relative_to(store.root)
    assert img.path.suffix == ".png"
    assert img.path.name.startswith(img.sha256)
    im = opened(img)
    assert im.format == "PNG" and im.mode == "RGB"
    assert im.getpixel((5, 5)) == RED
    assert set(im.info) <= {"dpi"} or not im.info  # no text, ICC or EXIF chunks


def test_exif_rotated_portrait_is_made_upright(board: Path, store: WorkStore) -> None:
    # Stored landscape 480x320 with orientation 6: the camera was turned; it displays as 320x480 portrait.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(marked((480, 320)), "JPEG", quality=95, exif=exif.tobytes())
    img = source(put(board, "portrait.jpg", data), board, store)
    assert img.source_size == (480, 320)
    assert (img.width, img.height) == (320, 480)
    assert any("EXIF orientation 6" in c for c in img.conversions)
    im = opened(img)
    # Rotating 90° clockwise moves the stored top-left corner to the top-right.
    assert close(im.getpixel((img.width - 5, 5)), RED)
    assert close(im.getpixel((5, 5)), BLUE)
    assert "exif" not in im.info


def test_rgba_is_flattened_on_white_or_black(board: Path, store: WorkStore) -> None:
    im = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    im.paste((*GREEN, 255), (200, 0, 400, 300))
    spec = put(board, "alpha.png", encode(im, "PNG"))
    on_white = source(spec, board, store)
    assert "alpha flattened on white" in on_white.conversions
    assert opened(on_white).getpixel((10, 10)) == (255, 255, 255)
    assert opened(on_white).getpixel((300, 10)) == GREEN
    on_black = source(spec, board, store, background="black")
    assert opened(on_black).getpixel((10, 10)) == (0, 0, 0)
    assert on_black.sha256 != on_white.sha256


def test_cmyk_jpeg_becomes_rgb(board: Path, store: WorkStore) -> None:
    cmyk = Image.new("CMYK", (400, 300), (0, 255, 255, 0))  # full magenta + yellow: red
    img = source(put(board, "print.jpg", encode(cmyk, "JPEG", quality=95)), board, store)
    assert img.source_mode == "CMYK"
    assert "CMYK -> RGB" in img.conversions
    im = opened(img)
    assert im.mode == "RGB"
    assert close(im.getpixel((200, 150)), (255, 0, 0), tol=20)


def test_srgb_or_broken_icc_profiles_leave_pixels_alone(board: Path, store: WorkStore) -> None:
    im = marked((400, 300))
    plain = source(put(board, "plain.png", encode(im, "PNG")), board, store)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tagged = source(put(board, "srgb.png", encode(im, "PNG", icc_profile=srgb)), board, store)
    broken = source(put(board, "broken.png", encode(im, "PNG", icc_profile=b"not a profile")), board, store)
    assert tagged.conversions == broken.conversions == []
    assert tagged.sha256 == broken.sha256 == plain.sha256  # and the profile is not carried into the PNG


def test_16_bit_png_is_scaled_not_clipped(board: Path, store: WorkStore) -> None:
    im = Image.new("I;16", (400, 300), 0x8000)  # half scale: 128 in 8 bits
    im.paste(Image.new("I;16", (200, 300), 0xFFFF), (200, 0))
    img = source(put(board, "deep.png", encode(im, "PNG")), board, store)
    assert img.source_mode.startswith("I")
    assert any("16-bit" in c for c in img.conversions)
    out = opened(img)
    assert out.mode == "RGB"
    assert out.getpixel((10, 10)) == (128, 128, 128)
    assert out.getpixel((300, 10)) == (255, 255, 255)


def test_animated_gif_keeps_its_first_frame(board: Path, store: WorkStore) -> None:
    frames = [Image.new("RGB", (320, 320), c) for c in (GREEN, RED, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = source(put(board, "anim.gif", data), board, store)
    assert img.source_format == "GIF"
    assert "first frame of 3" in img.conversions
    assert close(opened(img).getpixel((10, 10)), GREEN)


def test_longest_side_is_capped(board: Path, store: WorkStore) -> None:
    data = encode(marked((1200, 400)), "PNG")
    img = source(put(board, "wide.png", data), board, store, max_side=600, min_side=100)
    assert (img.width, img.height) == (600, 200)
    assert any(c.startswith("resized 1200x400 -> 600x200") for c in img.conversions)


def test_same_source_gives_same_sha256(board: Path, store: WorkStore, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 3
    data = encode(marked((500, 400)), "JPEG", quality=90, exif=exif.tobytes())
    spec = put(board, "same.jpg", data)
    first = source(spec, board, store)
    second = source(spec, board, WorkStore(tmp_path / "other-home"))
    assert first.sha256 == second.sha256
    assert first.source_sha256 == second.source_sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    # The same pixels arriving in another container normalise to the same PNG.
    png_copy = put(board, "same.png", encode(opened(first), "PNG", compress_level=1))
    assert source(png_copy, board, store).sha256 == first.sha256


def test_symlink_inside_the_folder_is_fine(board: Path, store: WorkStore) -> None:
    put(board, "real.png", encode(marked((300, 300)), "PNG"))
    (board / "alias.png").symlink_to(board / "images" / "real.png")
    img = source("alias.png", board, store)
    assert img.resolved == str((board / "images" / "real.png").resolve())


# --- refusals ------------------------------------------------------------------------------------------


def refused(spec: str, board: Path, store: WorkStore, match: str, **kwargs: object) -> InputError:
    with pytest.raises(InputError, match=match) as excinfo:
        source(spec, board, store, **kwargs)
    err = excinfo.value
    assert (err.storyboard, err.shot, err.field) == (SB, SHOT, "image")
    assert f"storyboard {SB!r}" in str(err) and f"shot {SHOT!r}" in str(err) and "'image'" in str(err)
    return err


def test_refuses_a_file_that_is_not_an_image(board: Path, store: WorkStore) -> None:
    refused(put(board, "notes.png", b"just some text, not pixels\n" * 10), board, store, "not an image")


def test_refuses_a_truncated_image(board: Path, store: WorkStore) -> None:
    data = encode(marked((600, 400)), "JPEG", quality=95)
    refused(put(board, "cut.jpg", data[: len(data) // 2]), board, store, "corrupt or truncated")
    png = encode(Image.effect_noise((600, 400), 64).convert("RGB"), "PNG")
    refused(put(board, "cut.png", png[: len(png) // 2]), board, store, "corrupt or truncated")


def test_refuses_a_too_small_image(board: Path, store: WorkStore) -> None:
    refused(put(board, "tiny.png", encode(marked((400, 200)), "PNG")), board, store, "at least 256 px")


def test_refuses_a_decompression_bomb(board: Path, store: WorkStore) -> None:
    # 9000 x 8000 one-bit pixels compress to a few kB but would decode to 72 Mpx.
    data = encode(Image.new("1", (9000, 8000)), "PNG")
    assert len(data) < 100_000
    refused(put(board, "bomb.png", data), board, store, "at most 64,000,000")


def test_refuses_an_oversized_file(board: Path, store: WorkStore) -> None:
    spec = put(board, "big.png", encode(marked((300, 300)), "PNG"))
    refused(spec, board, store, "at most 100 are accepted", max_bytes=100)


def test_refuses_paths_leaving_the_folder(board: Path, store: WorkStore, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(encode(marked((300, 300)), "PNG"))
    refused("../../secret.png", board, store, r"'\.\.' is refused")
    refused("images/../../../secret.png", board, store, r"'\.\.' is refused")
    refused(str(outside), board, store, "absolute paths are refused")
    (board / "images" / "escape.png").symlink_to(outside)
    refused("images/escape.png", board, store, "outside the storyboard folder")
    (board / "linkdir").symlink_to(tmp_path)
    refused("linkdir/secret.png", board, store, "outside the storyboard folder")


def test_refuses_missing_files_and_odd_schemes(board: Path, store: WorkStore) -> None:
    refused("images/missing.png", board, store, "not found")
    refused("ftp://example.com/a.png", board, store, "URL scheme 'ftp' is refused: use https:// or s3://")
    refused("  ", board, store, "no image given")


def test_nothing_is_stored_for_a_refused_image(board: Path, store: WorkStore) -> None:
    refused(put(board, "tiny.png", encode(marked((100, 100)), "PNG")), board, store, "at least")
    assert not (store.root / "objects").exists() or not any((store.root / "objects").rglob("*.png"))


def test_refuses_plain_http_unless_allowed(board: Path, store: WorkStore) -> None:
    refused("http://example.com/a.png", board, store, "plain http:// URLs are refused", policy=UrlPolicy())


# --- over HTTP -----------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over plain HTTP on loopback: the https code path, with the LOOPBACK policy."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_image_over_http(board: Path, store: WorkStore, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    data = encode(marked((640, 480)), "JPEG", quality=90)
    (root / "still.jpg").write_bytes(data)
    img = source(f"{base}/still.jpg", board, store, policy=LOOPBACK)
    assert img.origin_kind == "https"
    assert img.resolved == f"{base}/still.jpg"
    assert (img.width, img.height) == (640, 480)
    from_disk = source(put(board, "still.jpg", data), board, store)
    assert img.sha256 == from_disk.sha256
    assert img.source_sha256 == from_disk.source_sha256


def test_http_errors(board: Path, store: WorkStore, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    refused(f"{base}/missing.jpg", board, store, "server answered 404", policy=LOOPBACK)
    (root / "big.png").write_bytes(encode(marked((400, 400)), "PNG"))
    refused(f"{base}/big.png", board, store, "at most 1,000 are accepted", policy=LOOPBACK, max_bytes=1000)
    (root / "page.png").write_text("<html>not an image</html>")
    refused(f"{base}/page.png?token=secret", board, store, "not an image", policy=LOOPBACK)


def test_query_strings_stay_out_of_error_messages(board: Path, store: WorkStore, http_root: tuple[Path, str]) -> None:
    _, base = http_root
    err = refused(f"{base}/x.jpg?X-Amz-Signature=abc123", board, store, "404", policy=LOOPBACK)
    assert "abc123" not in str(err)


def test_unreachable_server_is_retryable(board: Path, store: WorkStore) -> None:
    with pytest.raises(SourceUnavailable) as excinfo:
        source("http://127.0.0.1:9/a.png", board, store, policy=LOOPBACK, timeout_s=5)
    assert excinfo.value.field == "image"


# --- from S3 -------------------------------------------------------------------------------------------


def test_image_from_s3(board: Path, store: WorkStore, s3_env: S3Env) -> None:
    data = encode(marked((512, 384)), "PNG")
    s3_env.client.put_object(Bucket=s3_env.bucket, Key="stills/boats.png", Body=data)
    img = source(s3_env.uri("stills/boats.png"), board, store)
    assert img.origin_kind == "s3"
    assert img.resolved == s3_env.uri("stills/boats.png")
    assert (img.width, img.height) == (512, 384)
    assert img.sha256 == source(put(board, "boats.png", data), board, store).sha256


def test_s3_errors(board: Path, store: WorkStore, s3_env: S3Env) -> None:
    refused(s3_env.uri("missing.png"), board, store, "no such object")
    refused("s3://no-such-bucket-xyz/a.png", board, store, "no such bucket")
    refused("s3://Bad_Bucket/a.png", board, store, "invalid bucket name")
    s3_env.client.put_object(Bucket=s3_env.bucket, Key="big.png", Body=b"x" * 2000)
    refused(s3_env.uri("big.png"), board, store, "at most 1,000", max_bytes=1000)


# --- a URL fal can fetch -------------------------------------------------------------------------------


def test_fal_url_passes_an_untouched_https_origin_through(board: Path, store: WorkStore) -> None:
    img = source(put(board, "a.png", encode(marked((300, 300)), "PNG")), board, store)
    https_img = img.model_copy(update={"origin": "https://cdn.example.com/a.png", "origin_kind": "https"})
    assert image_url_for_fal(https_img) == "https://cdn.example.com/a.png"
    # If normalisation changed the pixels, fal must get the normalised image instead (the generator uploads it).
    rotated = https_img.model_copy(update={"conversions": ["EXIF orientation 6 (rotate 90 CW)"]})
    assert image_url_for_fal(rotated) is None


def test_fal_url_is_none_for_a_local_still(board: Path, store: WorkStore) -> None:
    # a still from the storyboard folder goes to fal storage (uploaded by the generator), not as a URL here
    img = source(put(board, "a.png", encode(marked((300, 300)), "PNG")), board, store)
    assert img.origin_kind != "https"
    assert image_url_for_fal(img) is None


def test_fal_url_is_none_for_an_s3_origin(board: Path, store: WorkStore, s3_env: S3Env) -> None:
    # s3 objects are private: no presigned URL any more, the normalised copy is uploaded to fal storage
    s3_env.client.put_object(Bucket=s3_env.bucket, Key="src/a.jpg", Body=encode(marked((400, 300)), "JPEG", quality=90))
    img = source(s3_env.uri("src/a.jpg"), board, store)
    assert image_url_for_fal(img) is None
    s3_like = img.model_copy(update={"origin_kind": "https", "origin": s3_env.uri("src/a.jpg")})
    assert image_url_for_fal(s3_like) is None  # only an https:// origin is ever passed through


def test_fal_url_never_reads_the_stored_file(board: Path, store: WorkStore) -> None:
    # a lineage record from another machine's store: the rule looks at the origin only
    img = source(put(board, "a.png", encode(marked((300, 300)), "PNG")), board, store)
    moved = img.model_copy(update={"path": Path("/nonexistent/elsewhere.png")})
    assert image_url_for_fal(moved) is None
    https_moved = moved.model_copy(update={"origin": "https://cdn.example.com/a.png", "origin_kind": "https"})
    assert image_url_for_fal(https_moved) == "https://cdn.example.com/a.png"
    plain_http = https_moved.model_copy(update={"origin": "http://cdn.example.com/a.png"})
    assert image_url_for_fal(plain_http) is None


# --- downstream steps find the image again --------------------------------------------------------------


def test_stored_image_round_trips_through_json(board: Path, store: WorkStore, tmp_path: Path) -> None:
    img = source(put(board, "a.png", encode(marked((300, 300)), "PNG")), board, store)
    lineage = json.loads(json.dumps(img.model_dump(mode="json", exclude={"path"})))
    again = stored_image(lineage, store)
    assert again == img
    with pytest.raises(MediaError, match="materialize source_image again"):
        stored_image(lineage, WorkStore(tmp_path / "empty-home"))


# --- the URL guard, the limits, the offline check ----------------------------------------------------------


@pytest.fixture
def hostile() -> Iterator[Server]:
    yield from serve(hostile_handler)


def test_urls_are_held_to_the_policy_before_any_connection(board: Path, store: WorkStore) -> None:
    refused("https://169.254.169.254/latest/meta-data/", board, store, "cloud metadata address", policy=UrlPolicy())
    refused("https://127.0.0.1/a.png", board, store, "loopback", policy=UrlPolicy())
    refused("https://u:p@example.com/a.png", board, store, "user:password@", policy=UrlPolicy())
    refused("images/a.png\x00", board, store, "control characters")


def test_a_redirect_to_a_refused_address_names_where_it_came_from(
    board: Path, store: WorkStore, hostile: Server
) -> None:
    policy = UrlPolicy().trusting(hostile.url)
    err = refused(
        f"{hostile.url}/redirect?to=https://10.0.0.9/x.png", board, store, "10.0.0.9, which is private", policy=policy
    )
    assert f"redirected from {hostile.url}/redirect?…" in str(err)
    assert len(hostile.hosts) == 1


def test_a_body_without_length_is_stopped_at_the_limit(board: Path, store: WorkStore, hostile: Server) -> None:
    policy = UrlPolicy().trusting(hostile.url)
    url = f"{hostile.url}/endless"
    refused(url, board, store, "larger than 100,000 bytes; stopped", policy=policy, max_bytes=100_000)


def test_a_download_that_never_ends_is_stopped_at_the_time_limit(
    board: Path, store: WorkStore, hostile: Server
) -> None:
    with pytest.raises(SourceUnavailable, match=r"took longer than 0\.3 s"):
        source(f"{hostile.url}/trickle", board, store, policy=UrlPolicy().trusting(hostile.url), timeout_s=0.3)


def test_a_fifo_is_not_read(board: Path, store: WorkStore) -> None:
    os.mkfifo(board / "images" / "pipe.png")
    refused("images/pipe.png", board, store, "not a regular file")


def test_check_image_runs_the_checks_offline(board: Path, store: WorkStore) -> None:
    def check(spec: str, **kwargs: object) -> None:
        check_image(spec, board, storyboard_id=SB, shot_id=SHOT, policy=UrlPolicy(), **kwargs)  # type: ignore[arg-type]

    check(put(board, "ok.png", encode(marked((640, 360)), "PNG")))
    check("https://cdn.example.invalid/a.png")  # not fetched, not even resolved: .invalid never resolves
    check("s3://bucket/stills/a.png")
    for spec, needle in [
        (put(board, "small.png", encode(marked((100, 100)), "PNG")), "at least 256 px"),
        (put(board, "text.png", b"hello" * 100), "not an image"),
        ("images/missing.png", "not found"),
        ("https://10.0.0.1/a.png", "private"),
        ("http://cdn.example.com/a.png", "plain http"),
        ("s3://Bad_Bucket/a.png", "invalid bucket name"),
    ]:
        with pytest.raises(InputError, match=needle) as info:
            check(spec)
        assert (info.value.storyboard, info.value.shot, info.value.field) == (SB, SHOT, "image")
    assert not store.root.exists()  # nothing was stored


def test_a_tampered_stored_image_is_refused_before_use(board: Path, store: WorkStore) -> None:
    img = source(put(board, "a.png", encode(marked((300, 300)), "PNG")), board, store)
    lineage = img.model_dump(mode="json", exclude={"path"})
    img.path.write_bytes(encode(marked((300, 300), "L"), "PNG"))
    with pytest.raises(MediaError, match="no longer matches its sha256"):
        stored_image(lineage, store)
