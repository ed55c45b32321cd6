"""Money: the model's price table, how a finished clip is priced, and the daily budget shared by processes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from shotline.budget import Budget
from shotline.db import Database, open_database
from shotline.db.engine import sqlite_url
from shotline.db.tables import budget_entries, clip_leases, clips, fal_requests, fal_uploads
from shotline.errors import BudgetExceeded, GenerationError
from shotline.fal.pricing import (
    billed_seconds,
    clip_cost,
    clip_cost_usd,
    estimate_cost,
    estimate_cost_usd,
)
from shotline.store import WorkStore

# -- pricing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "seconds", "images", "expected"),
    [
        ("480p", 5, 0, "0.40"),  # the model page's own examples
        ("720p", 5, 0, "0.70"),
        ("480p", 5, 1, "0.41"),
        ("720p", 6, 1, "0.85"),
        ("720p", 15, 1, "2.11"),
        ("480p", 1, 1, "0.09"),
    ],
)
def test_estimate_matches_the_price_table(resolution: str, seconds: int, images: int, expected: str) -> None:
    assert estimate_cost(resolution, seconds, images) == Decimal(expected)
    assert estimate_cost_usd(resolution, seconds, images) == float(expected)


@given(seconds=st.integers(1, 15), resolution=st.sampled_from(["480p", "720p"]), images=st.integers(0, 7))
def test_estimates_are_exact_cents(seconds: int, resolution: str, images: int) -> None:
    cost = estimate_cost(resolution, seconds, images)
    per_second = {"480p": 8, "720p": 14}[resolution]
    assert cost * 100 == per_second * seconds + images  # exact, no float drift
    assert cost.as_tuple().exponent == -2


def test_unknown_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="1080p"):
        estimate_cost("1080p", 5)


def test_a_finished_clip_bills_the_requested_seconds_not_the_frame_count_duration() -> None:
    # fal returns 145 frames at 24 fps = 6.041667 s for a 6 s request
    assert billed_seconds(6, 6.041667) == 6
    assert clip_cost_usd("720p", 6.041667, requested_duration_s=6) == 0.85
    assert clip_cost("480p", 2.041667, requested_duration_s=2) == Decimal("0.17")


def test_without_the_request_the_returned_duration_is_rounded_to_whole_seconds() -> None:
    assert billed_seconds(None, 6.041667) == 6
    assert billed_seconds(None, 5.5) == 6
    assert billed_seconds(None, 0.2) == 1
    assert clip_cost_usd("720p", 6.041667) == 0.85
    with pytest.raises(ValueError):
        billed_seconds(None, None)


# -- budget -----------------------------------------------------------------------------------------------

DAY1 = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 0, 1, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(sqlite_url(tmp_path / "home"))


def budget_rows(db: Database) -> list[dict[str, Any]]:
    with db.begin() as conn:
        rows = conn.execute(sa.select(budget_entries).order_by(budget_entries.c.at, budget_entries.c.id))
        return [dict(row) for row in rows.mappings()]


def test_budget_reserves_up_to_the_cap_then_refuses_with_the_numbers(db: Database) -> None:
    budget = Budget(db, 2.00, now=lambda: DAY1)
    budget.reserve(0.85, "clip-a")
    budget.reserve(0.85, "clip-b")
    before = budget_rows(db)
    with pytest.raises(BudgetExceeded) as caught:
        budget.reserve(0.85, "clip-c", label="harbor-teaser/s03-gulls")
    message = str(caught.value)
    assert "SHOTLINE_BUDGET_USD=$2.00" in message and "harbor-teaser/s03-gulls" in message
    assert "$0.85" in message and "$1.70 reserved" in message and "Nothing was submitted" in message
    assert isinstance(caught.value, GenerationError) and not caught.value.retryable
    assert budget_rows(db) == before  # a refusal writes nothing
    assert sorted(r["clip_key"] for r in before) == ["clip-a", "clip-b"]


def test_settle_commits_the_actual_cost_and_release_gives_money_back(db: Database) -> None:
    budget = Budget(db, 1.00, now=lambda: DAY1)
    first = budget.reserve(0.85, "clip-a")
    with pytest.raises(BudgetExceeded):
        budget.reserve(0.85, "clip-b")
    budget.release(first)
    second = budget.reserve(0.85, "clip-b")
    budget.settle(second, 0.71)
    spend = budget.spend()
    assert (spend.committed, spend.reserved) == (Decimal("0.71"), Decimal("0"))
    assert spend.left == Decimal("0.29")
    budget.settle(second, 0.71)  # settling twice (a resumed request) counts once
    assert budget.spend().committed == Decimal("0.71")
    rows = {r["id"]: r for r in budget_rows(db)}
    assert rows[second.id]["clip_key"] == "clip-b" and rows[second.id]["state"] == "committed"
    assert rows[second.id]["amount_cents"] == 71
    assert rows[first.id]["state"] == "released" and rows[first.id]["amount_cents"] == 0


def test_each_utc_day_has_its_own_cap_and_late_settles_land_on_the_reservation_day(db: Database) -> None:
    clock = {"now": DAY1}
    budget = Budget(db, 1.00, now=lambda: clock["now"])
    late = budget.reserve(0.85, "clip-a")
    clock["now"] = DAY2
    budget.reserve(0.85, "clip-b")  # a new day, a fresh cap
    budget.settle(late)
    assert budget.spend("2026-03-01").committed == Decimal("0.85")
    assert budget.spend("2026-03-02").reserved == Decimal("0.85")
    assert budget.spend("2026-03-02").committed == Decimal("0")


def test_no_cap_records_spend_but_never_refuses(db: Database) -> None:
    budget = Budget(db, None, now=lambda: DAY1)
    for i in range(20):
        budget.settle(budget.reserve(2.11, f"clip-{i}"))
    assert budget.spend().committed == Decimal("42.20")
    assert budget.spend().left is None


def _reserve_in_child(url: str, index: int, barrier: Any, out: Any) -> None:
    barrier.wait()
    # every process opens (and, the first time, migrates) the database itself, as separate hosts do
    budget = Budget(open_database(url), 5.00, now=lambda: DAY1)
    try:
        budget.reserve(1.00, f"clip-{index}")
        out.put(True)
    except BudgetExceeded:
        out.put(False)


def test_concurrent_processes_never_overshoot_the_cap(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shared")  # not opened in this process before the children fork
    ctx = multiprocessing.get_context("fork")
    count = 10
    barrier = ctx.Barrier(count)
    out = ctx.Queue()
    procs = [ctx.Process(target=_reserve_in_child, args=(url, i, barrier, out)) for i in range(count)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert results.count(True) == 5
    spend = Budget(open_database(url), 5.00, now=lambda: DAY1).spend()
    assert spend.reserved == Decimal("5.00") and spend.left == Decimal("0.00")


# -- shotline estimate ------------------------------------------------------------------------------------


def estimate_lines(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    from shotline.cli import main

    assert main(["estimate", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {name: rest for name, rest in (line.split(maxsplit=1) for line in lines if line.startswith("  "))}
    rows["budget"] = next((line for line in lines if line.startswith("SHOTLINE_BUDGET_USD")), "")
    return rows


def test_estimate_prices_a_storyboard_and_what_is_cached_or_already_paid_costs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_fal: Any
) -> None:
    from pydantic import SecretStr

    from shotline.clip_index import ClipIndex
    from shotline.fal.client import FalQueueClient
    from shotline.fal.generator import FalGenerator
    from shotline.fal.ledger import RequestLedger
    from shotline.fal.models import RequestHandle
    from shotline.generators.base import GenerationRequest
    from shotline.generators.cache import clip_key, generate_clip
    from shotline.images import ingest_image
    from shotline.prompts import render_prompt
    from shotline.storyboard import load_storyboard
    from testkit.fakes.fal_server import MODEL
    from testkit.storyboard_factory import tiny_storyboard

    folder = tiny_storyboard(tmp_path / "storyboards", n_shots=3, duration=2, resolution="480p")
    home = tmp_path / "home"
    for name in ("FAL_KEY", "SHOTLINE_GENERATOR", "SHOTLINE_FAL_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOTLINE_HOME", str(home))
    monkeypatch.setenv("SHOTLINE_BUDGET_USD", "0.40")

    rows = estimate_lines(capsys, str(folder))
    assert [rows[s].split()[-1] for s in ("s01", "s02", "s03")] == ["0.17", "0.17", "0.17"]
    assert rows["total"].split()[-1] == "0.51"
    assert "0.40 left; this does NOT fit" in rows["budget"]
    # estimating records nothing: at most it creates the (empty) database under SHOTLINE_HOME
    assert {p.name for p in home.iterdir()} <= {"shotline.db", "shotline.db-wal", "shotline.db-shm"}
    db = open_database(sqlite_url(home))
    with db.begin() as conn:
        for table in (fal_requests, budget_entries, clips, clip_leases, fal_uploads):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0, table.name

    # s01 generated on fal (through the cache, as raw_clip does it); s02's paid request still running
    sb, store = load_storyboard(folder), WorkStore(home)

    def request_for(shot_id: str) -> GenerationRequest:
        shot = sb.shot(shot_id)
        image = ingest_image(shot.image, sb.folder, store, storyboard_id=sb.id, shot_id=shot.id)
        prompt = render_prompt(sb, shot).text
        key = clip_key(generator="fal", model=MODEL, image_sha256=image.sha256, prompt=prompt,
                       duration=shot.duration, resolution=shot.resolution)  # fmt: skip
        return GenerationRequest(storyboard_id=sb.id, shot_id=shot.id, clip_key=key, prompt=prompt,
                                 image_path=image.path, image_sha256=image.sha256, image_width=image.width,
                                 image_height=image.height, duration=shot.duration,
                                 resolution=shot.resolution)  # fmt: skip

    def client() -> FalQueueClient:
        return FalQueueClient(fake_fal.url, SecretStr(fake_fal.key), model=MODEL, sleep=lambda s: None,
                              media_origins=(fake_fal.cdn_url,))  # fmt: skip

    generator = FalGenerator(client, store, db, model=MODEL, budget=Budget(db, None))
    generate_clip(request_for("s01"), generator, store, ClipIndex(db), lambda line: None)
    ledger, running = RequestLedger(db), request_for("s02")
    entry = ledger.begin_submit(None, clip_key=running.clip_key, storyboard_id=sb.id, shot_id="s02", model=MODEL,
                                parameters={}, input_sha256="0" * 64, image_sha256=running.image_sha256,
                                estimated_cost_usd=0.17)  # fmt: skip
    root = f"{fake_fal.url}/xai/grok-imagine-video/requests/r-2"
    ledger.mark_submitted(entry, RequestHandle(request_id="r-2", status_url=f"{root}/status", response_url=root,
                                               cancel_url=f"{root}/cancel"))  # fmt: skip

    rows = estimate_lines(capsys, str(folder))
    assert rows["s01"].endswith("$  0.00  (cached)")
    assert rows["s02"].endswith("$  0.00  (paid: fal request r-2 submitted)")
    assert rows["s03"].endswith("$  0.17") and rows["total"].split()[-1] == "0.17"
    # today's spend (the s01 clip) counts against the cap
    assert "$0.17 spent or reserved today" in rows["budget"]
    assert "$0.23 left; this fits" in rows["budget"]
    assert len(fake_fal.submits) == 1
