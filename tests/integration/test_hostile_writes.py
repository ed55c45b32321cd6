"""Writes are atomic: a write that fails half-way leaves no partial file in the working store, the download
folder or the publish destination. The failure is real, not patched: the process's file size limit
(RLIMIT_FSIZE) makes the kernel refuse the write past a number of bytes, as a full disk would."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from shotline.errors import PublishError
from shotline.fal.client import FalQueueClient
from shotline.fal.models import SubmitPayload
from shotline.images import ingest_image
from shotline.publish import LocalPublisher
from shotline.store import WorkStore
from testkit.fakes.fal_server import FakeFal
from testkit.storyboard_factory import write_image


@contextlib.contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """Writes that would take a file past `nbytes` fail with EFBIG while this is in force."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not the signal that kills
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_failed_image_write_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    board = tmp_path / "sb"
    write_image(board / "images" / "a.png", (1200, 800))
    store = WorkStore(tmp_path / "home")
    with file_size_limit(4096), pytest.raises(OSError) as info:
        ingest_image("images/a.png", board, store, storyboard_id="sb", shot_id="s01")
    assert info.value.errno == errno.EFBIG
    assert files(store.root) == []
    # the same call with room to write stores exactly one object
    img = ingest_image("images/a.png", board, store, storyboard_id="sb", shot_id="s01")
    assert files(store.root) == [img.path.relative_to(store.root).as_posix()]


def test_a_failed_download_leaves_no_partial_video(tmp_path: Path, fake_fal: FakeFal) -> None:
    fake_fal.queue_polls, fake_fal.progress_polls = 0, 1
    image = fake_fal.serve_asset("still.png", _png(tmp_path), "image/png")
    with FalQueueClient(
        fake_fal.url,
        SecretStr(fake_fal.key),
        model=fake_fal.model,
        poll_interval=0.01,
        media_origins=(fake_fal.cdn_url,),  # generated media comes from fal's CDN origin
    ) as client:
        handle = client.handle_for(
            client.submit(SubmitPayload(prompt="a boat", image_url=image, duration=1, resolution="480p"))
        )
        client.wait(handle)
        video = client.result(handle).video
        downloads = tmp_path / "downloads"
        size, _ = client.download(video.url, downloads / "first.mp4")  # the fake renders it now, unlimited
        assert size > 10_000 and files(downloads) == ["first.mp4"]
        with file_size_limit(10_000), pytest.raises(OSError) as info:
            client.download(video.url, downloads / "clip.mp4")
        assert info.value.errno == errno.EFBIG
        assert files(downloads) == ["first.mp4"]


def _png(tmp_path: Path) -> bytes:
    return write_image(tmp_path / "still.png", (640, 360)).read_bytes()


def test_a_failed_publish_leaves_the_destination_as_it_was(tmp_path: Path) -> None:
    small, video = tmp_path / "small.mp4", tmp_path / "final.mp4"
    small.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2_000))
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(200_000))
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2_000))
    root = tmp_path / "published"
    pub = LocalPublisher(root)
    first = pub.publish_clip(
        "sb", "s01", small, thumb, lambda media: {"run": "one", "published": media.manifest_section()}
    )
    before = {name: (root / name).read_bytes() for name in files(root)}
    with file_size_limit(100_000), pytest.raises(PublishError, match="File too large"):
        pub.publish_clip("sb", "s01", video, thumb, lambda media: {"run": "two", "published": media.manifest_section()})
    assert {name: (root / name).read_bytes() for name in files(root)} == before
    latest = json.loads((root / "sb" / "s01" / "latest.json").read_text())
    assert latest["sha256"] == first.sha256
