"""fal's answers, hostile or broken, at the client and generator level (the Dagster-level cases are in
tests/integration/corpus/cases.yaml `fal_responses`): the media download goes through shotline.netguard, so a video URL
at a refused address, or a redirect to one, fails clearly without a connection; an answer that is not JSON
fails clearly and the paid request is resumed later, never submitted again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from shotline.clip_index import ClipIndex
from shotline.db import open_database
from shotline.db.engine import sqlite_url
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import FalMediaError, FalProtocolError
from shotline.fal.generator import build_fal_generator
from shotline.fal.ledger import LedgerState, RequestLedger
from shotline.generators.base import GenerationRequest
from shotline.generators.cache import generate_clip
from shotline.hashing import sha256_file
from shotline.store import WorkStore
from testkit.fakes.fal_server import FakeFal
from testkit.storyboard_factory import write_image


@pytest.fixture
def fal(fake_fal: FakeFal, monkeypatch: pytest.MonkeyPatch) -> FakeFal:
    for name in ("SHOTLINE_ALLOW_HOSTS", "SHOTLINE_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    fake_fal.queue_polls, fake_fal.progress_polls = 0, 1
    return fake_fal


@pytest.fixture
def other_host() -> Iterator[FakeFal]:
    """A second server on loopback, another origin than the configured fal queue: a CDN we did not allow."""
    other = FakeFal().start()
    try:
        yield other
    finally:
        other.stop()


def client(fal: FakeFal) -> FalQueueClient:
    return FalQueueClient(fal.url, SecretStr(fal.key), model=fal.model, poll_interval=0.01, sleep=lambda _: None)


def test_the_configured_fal_origin_is_trusted_for_media(fal: FakeFal, tmp_path: Path) -> None:
    mp4 = fal.render_mp4(64, 64, 25).read_bytes()
    url = fal.serve_asset("clip.mp4", mp4, "video/mp4")
    with client(fal) as c:
        assert c.download(url, tmp_path / "v.mp4")[0] == len(mp4)


def test_media_on_another_local_origin_needs_the_allow_list(
    fal: FakeFal, other_host: FakeFal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp4 = other_host.render_mp4(64, 64, 25).read_bytes()
    url = other_host.serve_asset("clip.mp4", mp4, "video/mp4")
    with client(fal) as c, pytest.raises(FalMediaError, match="fal video URL refused: plain http://") as info:
        c.download(url, tmp_path / "v.mp4")
    assert info.value.retryable is False and info.value.billed is True
    assert other_host.seen("asset") == [] and not (tmp_path / "v.mp4").exists()
    monkeypatch.setenv("SHOTLINE_ALLOW_HOSTS", other_host.url)  # the explicit allow-list, origin form
    with client(fal) as c:
        assert c.download(url, tmp_path / "v.mp4")[0] == len(mp4)
    assert len(other_host.seen("asset")) == 1


@pytest.mark.parametrize(
    ("location", "needle"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/clip.mp4", "plain http"),
        ("https://169.254.169.254/latest/meta-data/iam/clip.mp4", "cloud metadata address"),
        ("https://10.1.1.1/clip.mp4", "private"),
        ("https://[::1]:9/clip.mp4", "loopback"),
    ],
)
def test_a_media_redirect_to_a_refused_address_fails_without_retrying(
    fal: FakeFal, tmp_path: Path, location: str, needle: str
) -> None:
    fal.fail_next("media", status=302, headers={"Location": location})
    with client(fal) as c, pytest.raises(FalMediaError, match=f"fal video URL refused: .*{needle}"):
        c.download(f"{fal.url}/media/any/clip.mp4", tmp_path / "v.mp4")
    assert len(fal.seen("media")) == 1  # refused on the hop: not retried, nothing fetched from there
    assert list(tmp_path.iterdir()) == []


def request(tmp_path: Path) -> GenerationRequest:
    image = write_image(tmp_path / "still.png", (640, 360))
    return GenerationRequest(
        storyboard_id="sb",
        shot_id="s01",
        clip_key="clip-hostile-json",
        prompt="slow push-in on a harbour",
        image_path=image,
        image_sha256=sha256_file(image),
        image_width=640,
        image_height=360,
        duration=1,
        resolution="480p",
    )


def test_a_result_that_is_not_json_fails_clearly_and_is_resumed_not_resubmitted(fal: FakeFal, tmp_path: Path) -> None:
    store = WorkStore(tmp_path / "home")
    db = open_database(sqlite_url(tmp_path / "home"))
    generator = build_fal_generator(
        store=store,
        db=db,
        key=SecretStr(fal.key),
        base_url=fal.url,
        rest_url=fal.rest_url,
        cdn_url=fal.cdn_url,
        api_url=fal.api_url,
        model=fal.model,
        budget_usd=None,
        poll_interval=0.01,
    )
    req = request(tmp_path)
    index = ClipIndex(db)
    fal.fail_next("result", status=200, body="{'video': oops", headers={"Content-Type": "application/json"})
    with pytest.raises(
        FalProtocolError, match=r"storyboard 'sb', shot 's01': fal result of request .* has no usable video: \{'video"
    ):
        generate_clip(req, generator, store, index, lambda _: None)
    assert len(fal.submits) == 1
    assert not list(store.root.rglob("*.mp4"))
    entry = RequestLedger(db).get(req.clip_key)
    assert entry is not None and entry.state == LedgerState.SUBMITTED  # fal finished it: fetch it later

    clip = generate_clip(req, generator, store, index, lambda _: None)  # a retry resumes the same paid request
    assert len(fal.submits) == 1
    assert clip.result.request_id == entry.request_id
    assert [a.state for a in RequestLedger(db).attempts(req.clip_key)] == [LedgerState.COMPLETED]
