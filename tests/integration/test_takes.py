"""Takes, end to end through Dagster on fal (the fake server over HTTP): take 1, take 2 (one more billed
request, shown by `shotline estimate` first), back to take 1 (no request, latest.json back on take 1's clip),
both takes published side by side and listed by `shotline takes`; and bad takes refused, naming the
storyboard, the shot and the value, with nothing sent to fal."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotline.errors import StoryboardError
from shotline.generators.cache import clip_key
from shotline.media.probe import probe
from shotline.storyboard import load_storyboard
from testkit.fakes.fal_server import FakeFal
from testkit.storyboard_factory import write_storyboard
from testkit.takes_kit import Studio, open_studio, two_shots

CLIP_COST = 0.17  # 2 s at 480p: 2 x $0.08 + $0.01 for the image
IMAGES = {"images/s01.png": (64, 64), "images/s02.png": (64, 64)}


@pytest.fixture
def studio(tmp_path: Path, fake_fal: FakeFal, monkeypatch: pytest.MonkeyPatch):
    with open_studio(tmp_path, fake_fal, monkeypatch) as s:
        yield s


def published_files(studio: Studio, shot_id: str) -> set[str]:
    return {p.name for p in studio.folder(shot_id).iterdir()}


def test_take_two_pays_once_and_going_back_to_take_one_is_free(studio: Studio) -> None:
    studio.write({**two_shots(), "shots": two_shots()["shots"][:1]})
    studio.run_shot("s01")
    [first_request] = studio.fake.billed_request_ids
    take1 = studio.latest("s01")
    assert take1["take"] == 1 and studio.materialization("raw_clip", "s01")["take"] == 1
    manifest1 = studio.manifest("s01", take1["sha256"])
    assert manifest1["take"] == 1 and manifest1["generation"]["request_id"] == first_request
    assert probe(studio.folder("s01") / f"{take1['sha256'][:12]}.mp4").tags["take"] == "1"

    # Raising the take: the estimate shows what it will cost before anything runs.
    studio.set_shot("s01", take=2)
    code, out, _ = studio.cli("estimate", studio.storyboard_id)
    assert code == 0 and f"$  {CLIP_COST:.2f}  (take 2)" in out
    studio.run_shot("s01")
    assert len(studio.fake.billed_request_ids) == 2
    second_request = studio.fake.billed_request_ids[1]
    take2 = studio.latest("s01")
    assert take2["take"] == 2 and take2["sha256"] != take1["sha256"]
    manifest2 = studio.manifest("s01", take2["sha256"])
    assert manifest2["take"] == 2 and manifest2["generation"]["request_id"] == second_request
    assert manifest2["generation"]["clip_key"] != manifest1["generation"]["clip_key"]
    assert probe(studio.folder("s01") / f"{take2['sha256'][:12]}.mp4").tags["take"] == "2"
    # Both takes stay published, content-addressed, side by side.
    both = {f"{t['sha256'][:12]}.{ext}" for t in (take1, take2) for ext in ("mp4", "jpg", "json")}
    assert published_files(studio, "s01") == both | {"latest.json"}

    # Back to take 1: the estimate says it is free, the run makes no fal call, latest.json is take 1's again.
    studio.set_shot("s01", take=None)
    code, out, _ = studio.cli("estimate", studio.storyboard_id)
    assert code == 0 and "$  0.00  (cached)" in out
    submits = len(studio.fake.submits)
    studio.run_shot("s01")
    assert len(studio.fake.submits) == submits and len(studio.fake.billed_request_ids) == 2
    raw = studio.materialization("raw_clip", "s01")
    assert raw["cache_hit"] is True and raw["cost_usd"] == 0.0 and raw["take"] == 1
    assert studio.materialization("final_clip", "s01")["cache_hit"] is True
    back = studio.latest("s01")
    assert (back["take"], back["sha256"], back["manifest_sha256"]) == (1, take1["sha256"], take1["manifest_sha256"])
    assert published_files(studio, "s01") == both | {"latest.json"}

    listing = studio.cli_json("takes", f"{studio.storyboard_id}/s01")
    assert listing["take"] == 1
    assert [(t["take"], t["request_id"], t["current"]) for t in listing["takes"]] == [
        (1, first_request, True),
        (2, second_request, False),
    ]
    for entry, latest in zip(listing["takes"], (take1, take2), strict=True):
        assert entry["cost_usd"] == pytest.approx(CLIP_COST) and entry["generator"] == "fal"
        assert entry["sha256"] == latest["sha256"] and entry["video_uri"] == latest["video"]
        assert entry["thumbnail_uri"] == latest["thumbnail"] and entry["generated_at"]
        assert entry["review"]["state"] == "awaiting review"
    assert listing["spend"] == {"takes_paid": 2, "cost_usd": pytest.approx(2 * CLIP_COST), "requests": 2}
    code, out, _ = studio.cli("takes", f"{studio.storyboard_id}/s01")
    assert code == 0 and first_request in out and second_request in out and "<- latest.json" in out
    assert f"${2 * CLIP_COST:.2f} spent on fal for this shot (2 take(s) paid for" in out


def test_take_one_keeps_the_clip_key_of_shots_written_before_takes(tmp_path: Path) -> None:
    parts = {"generator": "fal", "model": "m", "image_sha256": "a" * 64, "prompt": "p", "duration": 2}
    before = clip_key(**parts, resolution="480p")
    assert clip_key(**parts, resolution="480p", take=1) == before
    assert clip_key(**parts, resolution="480p", take=2) != before != clip_key(**parts, resolution="480p", take=3)
    data = two_shots()
    plain = load_storyboard(write_storyboard(tmp_path / "a", data, images=IMAGES))
    data["shots"][0]["take"] = 1
    explicit = load_storyboard(write_storyboard(tmp_path / "b", data, images=IMAGES))
    data["shots"][0]["take"] = 2
    raised = load_storyboard(write_storyboard(tmp_path / "c", data, images=IMAGES))
    hashes = [sb.shot_spec_hash(sb.shots[0]) for sb in (plain, explicit, raised)]
    assert hashes[0] == hashes[1] != hashes[2]  # take 1 is today's spec: nothing reruns


def test_defaults_take_and_a_shot_override(tmp_path: Path) -> None:
    data = {**two_shots(), "defaults": {**two_shots()["defaults"], "take": 3}}
    data["shots"][1]["take"] = 1
    storyboard = load_storyboard(write_storyboard(tmp_path, data, images=IMAGES))
    assert [s.take for s in storyboard.shots] == [3, 1]


@pytest.mark.parametrize(
    ("take", "says"),
    [
        (0, "take 0 is not a take: takes count from 1"),
        (-2, "take -2 is not a take: takes count from 1"),
        (1.5, "take 1.5 is not a whole number"),
        ("2", "take '2' is not a whole number"),
        (True, "take True is not a whole number"),
    ],
)
def test_a_bad_take_is_refused_naming_storyboard_shot_and_value(
    studio: Studio, take: object, says: str, tmp_path: Path
) -> None:
    data = two_shots()
    data["shots"][1]["take"] = take
    folder = write_storyboard(tmp_path / "storyboards", data, images=IMAGES)
    with pytest.raises(StoryboardError) as refused:
        load_storyboard(folder)
    assert f"storyboard 'takes', shot 's02', field 'take': {says}" in str(refused.value)
    for command in ("validate", "estimate"):
        code, _, err = studio.cli(command, "takes")
        assert code == 1 and f"shot 's02', field 'take': {says}" in err
    data["shots"][1]["take"] = 1
    data["defaults"]["take"] = take
    write_storyboard(tmp_path / "storyboards", data, images={})
    code, _, err = studio.cli("validate", "takes")
    assert code == 1 and f"storyboard 'takes', field 'defaults.take': {says}" in err
    assert studio.fake.submits == [] and not (tmp_path / "published").exists()
