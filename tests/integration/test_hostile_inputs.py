"""The corpus of hostile and broken input (tests/integration/corpus/cases.yaml), each case refused twice:

- offline by `shotline validate` (exit code 1, the message listed), unless the case needs the network;
- by the real clip_job through Dagster, with the fal generator pointed at the fake fal server: the run fails
  in source_image or clip_prompt with the message, naming the storyboard, the shot and the field; fal saw no
  submit, raw_clip never materialized, nothing was published, and no half-written file is left behind.

Then fal's own answers (`fal_responses`): the clip fails with a clear message, nothing is published, and the
request ledger keeps the request as failed so that no later run pays for it again.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from PIL import Image

from pipelines.definitions import build_definitions
from shotline.cli import main as shotline_main
from shotline.config import Settings
from shotline.db import open_database
from shotline.db.engine import sqlite_url
from shotline.fal.ledger import RequestLedger
from testkit.fakes.fal_server import FakeFal
from testkit.storyboard_factory import write_image
from tests.integration.test_netguard import Server, hostile_handler, serve

CORPUS = yaml.safe_load((Path(__file__).parent / "corpus" / "cases.yaml").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = CORPUS["cases"]
FAL_CASES: list[dict[str, Any]] = CORPUS["fal_responses"]
URL_SECRETS = ("s3cr3t", "hunter2")  # credentials and tokens the corpus puts in URLs: never echoed


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) + len(FAL_CASES) >= 40
    assert len({c["name"] for c in CASES + FAL_CASES}) == len(CASES) + len(FAL_CASES)


# --- shared servers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fal() -> Iterator[FakeFal]:
    fake = FakeFal().start()
    fake.queue_polls, fake.progress_polls = 0, 1
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def web() -> Iterator[Server]:
    yield from serve(hostile_handler)


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


# --- building a case on disk ------------------------------------------------------------------------------


def bad_file(kind: str, path: Path) -> None:
    """The bad files the corpus names, made here (binary files do not belong in a YAML corpus)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "ok-png":
        write_image(path, (640, 360))
    elif kind == "text":
        path.write_text("just some notes, not pixels\n" * 20)
    elif kind == "html":
        path.write_text("<!doctype html><html><body>Access denied</body></html>")
    elif kind in ("truncated-jpeg", "truncated-png"):
        fmt = "JPEG" if kind == "truncated-jpeg" else "PNG"
        data = _encode(Image.effect_noise((640, 480), 64).convert("RGB"), fmt)
        path.write_bytes(data[: len(data) // 2])
    elif kind == "bomb-png":
        path.write_bytes(_encode(Image.new("1", (9000, 9000)), "PNG"))  # ~10 kB on disk, 81 Mpx decoded
    elif kind == "svg":
        path.write_text(
            '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360">'
            '<rect width="640" height="360" fill="navy"/></svg>'
        )
    elif kind == "ico":
        path.write_bytes(_encode(Image.new("RGB", (256, 256), (200, 40, 40)), "ICO"))
    elif kind == "tiny-png":
        write_image(path, (200, 120))
    elif kind == "sparse-60mb":
        with path.open("wb") as f:
            f.truncate(60 << 20)  # sparse: 60 MiB by its size, nothing on disk
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        raise AssertionError(f"unknown bad file kind {kind!r}")


def _encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def storyboard_text(case: dict[str, Any]) -> bytes:
    name = case["name"]
    if "yaml" in case:
        text = case["yaml"].replace("{id}", name)
    else:
        data: dict[str, Any] = {"id": name, **CORPUS["base"]}
        data["shots"] = [dict(s) for s in data["shots"]]
        for key, value in (case.get("set") or {}).items():
            data.pop(key) if value is None else data.__setitem__(key, value)
        if "shots" in case:
            data["shots"] = case["shots"]
        for key, value in (case.get("set_shot") or {}).items():
            data["shots"][0].pop(key) if value is None else data["shots"][0].__setitem__(key, value)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    text += "#" * case.get("pad", 0)
    return text.encode(case.get("encoding", "utf-8"))


def build_case(case: dict[str, Any], root: Path, server: Server) -> Path:
    folder = root / "storyboards" / case["name"]
    outside = root / "outside"
    (folder / "images").mkdir(parents=True)
    outside.mkdir()
    bad_file("ok-png", folder / "images" / "ok.png")
    raw = storyboard_text(case).replace(b"{server}", server.url.encode())
    (folder / "storyboard.yaml").write_bytes(raw)
    for rel, kind in (case.get("files") or {}).items():
        bad_file(kind, folder / rel)
    for name, text in (case.get("outside") or {}).items():
        if text == "ok-png":
            bad_file("ok-png", outside / name)
        else:
            (outside / name).write_text(text)
    for name, spec in (case.get("templates") or {}).items():
        spec = spec if isinstance(spec, dict) else {"text": spec}
        (folder / "templates").mkdir(exist_ok=True)
        (folder / "templates" / f"{name}.j2").write_bytes(spec["text"].encode(spec.get("encoding", "utf-8")))
    for rel, target in (case.get("symlinks") or {}).items():
        link = folder / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.replace("{outside}", str(outside)))
    return folder


def named_line(text: str, case: dict[str, Any]) -> str:
    """The line of `text` that carries the expected message and names the storyboard, shot and field."""
    wanted = [f"storyboard {case.get('storyboard', case['name'])!r}"]
    if case.get("shot"):
        wanted.append(f"shot {case['shot']!r}")
    if case.get("field"):
        wanted.append(f"field {case['field']!r}")
    for line in text.splitlines():
        if re.search(case["expect"], line) and all(w in line for w in wanted):
            return line
    raise AssertionError(f"no line has /{case['expect']}/ and {wanted}:\n{text}")


def leftovers(*roots: Path) -> list[Path]:
    """Half-written files (atomic writes' temp names) and scratch folders left under `roots`."""
    found: list[Path] = []
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if ".part" in path.name or (path.parent.name == "scratch" and path.parent.parent == root):
                found.append(path)
    return found


def case_env(tmp_path: Path, fal: FakeFal, folder: Path) -> dict[str, str]:
    return {
        "FAL_KEY": fal.key,
        "SHOTLINE_GENERATOR": "fal",
        "SHOTLINE_FAL_QUEUE_URL": fal.url,
        "SHOTLINE_FAL_REST_URL": fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fal.api_url,
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.01",
        "SHOTLINE_STORYBOARDS": str(folder.parent),
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
    }


def run_clip(env: dict[str, str], instance: dg.DagsterInstance, key: str) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("shots", [key])
    job = build_definitions(Settings.from_env(env)).resolve_job_def("clip_job")
    return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)


def step_failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        e.step_key or "": e.step_failure_data.error.message  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    }


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


# --- the corpus ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_refused_before_any_money_is_spent(
    case: dict[str, Any],
    tmp_path: Path,
    fal: FakeFal,
    web: Server,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = build_case(case, tmp_path, web)
    env = case_env(tmp_path, fal, folder)
    if "{server}" in str(case.get("set_shot", "")):
        env["SHOTLINE_ALLOW_HOSTS"] = web.url  # this server's origin only; the redirects go elsewhere
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SHOTLINE_ALLOW_HTTP", raising=False)
    if "SHOTLINE_ALLOW_HOSTS" not in env:
        monkeypatch.delenv("SHOTLINE_ALLOW_HOSTS", raising=False)

    if case.get("offline", True):
        status = shotline_main(["validate", str(folder)])
        err = capsys.readouterr().err
        assert status == 1, err
        named_line(err, case)
        assert not any(s in err for s in URL_SECRETS)

    result = run_clip(env, instance, f"{case['name']}__s01")
    assert not result.success
    failures = step_failures(result)
    assert set(failures) <= {"source_image", "clip_prompt"}, failures
    message = "\n".join(failures.values())
    named_line(message, case)
    assert not any(s in message for s in URL_SECRETS)
    assert "raw_clip" not in materialized(result)
    assert fal.submits == []
    published = tmp_path / "published"
    assert not published.exists() or not any(published.rglob("*"))
    assert leftovers(tmp_path / "home") == []


# --- fal's answers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", FAL_CASES, ids=[c["name"] for c in FAL_CASES])
def test_bad_fal_answers_fail_the_clip_and_publish_nothing(
    case: dict[str, Any],
    tmp_path: Path,
    fal: FakeFal,
    web: Server,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = build_case({"name": case["name"]}, tmp_path, web)
    env = case_env(tmp_path, fal, folder)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("SHOTLINE_ALLOW_HTTP", "SHOTLINE_ALLOW_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    fault = dict(case["fault"])
    submits_before = len(fal.submits)
    fal.fail_next(fault.pop("route"), **fault)

    result = run_clip(env, instance, f"{case['name']}__s01")
    assert not result.success
    failures = step_failures(result)
    assert list(failures) == ["raw_clip"], failures
    assert re.search(case["expect"], failures["raw_clip"]), failures["raw_clip"]
    assert f"storyboard {case['name']!r}, shot 's01'" in failures["raw_clip"]
    assert len(fal.submits) == submits_before + 1
    assert not materialized(result) & {"raw_clip", "final_clip", "published_clip"}
    published = tmp_path / "published"
    assert not published.exists() or not any(published.rglob("*"))
    assert leftovers(tmp_path / "home") == []
    # the ledger keeps the request as failed: a rerun refuses instead of paying again
    attempts = RequestLedger(open_database(sqlite_url(tmp_path / "home"))).for_storyboard(case["name"])
    assert [a.state.value for a in attempts] in (["failed"], ["completed"])  # never "submitted"
    again = run_clip(env, instance, f"{case['name']}__s01")
    assert not again.success
    assert len(fal.submits) == submits_before + 1


# --- raw_clip, the step that pays, checks its own inputs first ---------------------------------------------------


def test_the_paid_step_runs_after_every_check() -> None:
    graph = build_definitions(Settings.from_env({})).resolve_asset_graph()
    raw = graph.get(dg.AssetKey("raw_clip"))
    assert {dg.AssetKey("source_image"), dg.AssetKey("clip_prompt")} <= set(raw.parent_keys)
    assert dg.AssetKey("source_image") in graph.get(dg.AssetKey("clip_prompt")).parent_keys


def test_raw_clip_alone_refuses_inputs_that_are_not_the_shots_own(
    tmp_path: Path,
    fal: FakeFal,
    web: Server,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = build_case({"name": "stale"}, tmp_path, web)
    bad_file("ok-png", folder / "images" / "other.png")
    env = case_env(tmp_path, fal, folder)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    key = "stale__s01"
    instance.add_dynamic_partitions("shots", [key])
    job = build_definitions(Settings.from_env(env)).resolve_job_def("clip_job")
    first = job.execute_in_process(
        partition_key=key,
        instance=instance,
        asset_selection=[dg.AssetKey("source_image"), dg.AssetKey("clip_prompt")],
    )
    assert first.success
    submits = len(fal.submits)

    def raw_clip_alone() -> str:
        result = job.execute_in_process(
            partition_key=key, instance=instance, asset_selection=[dg.AssetKey("raw_clip")], raise_on_error=False
        )
        assert not result.success
        return step_failures(result)["raw_clip"]

    text = (folder / "storyboard.yaml").read_text()
    (folder / "storyboard.yaml").write_text(text.replace("slow push-in", "fast pull-out"))
    assert "field 'prompt': the shot's prompt changed since clip_prompt ran" in raw_clip_alone()
    (folder / "storyboard.yaml").write_text(text.replace("images/ok.png", "images/other.png"))
    assert "field 'image': the shot's image changed since source_image ran" in raw_clip_alone()
    (folder / "storyboard.yaml").write_text(text)
    stored = next((tmp_path / "home" / "objects").rglob("*.png"))
    stored.write_bytes(stored.read_bytes()[:-10])
    assert "no longer matches its sha256" in raw_clip_alone()
    assert len(fal.submits) == submits
