"""Every paid fal request followed to its end and billed only as fal bills, against the fake fal server,
which answers as fal does (a cancel only asks, a stored error answer never changes, 5xx is never billed):
ignored and handled cancels, stored model errors, the start timeout, runner errors, media on a CDN origin,
fal storage for stills, and lost submits found again in the platform listing. Each test counts what the fake
billed and holds the ledger and the budget to it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from shotline.budget import Budget
from shotline.db import Database, open_database
from shotline.db.engine import sqlite_url
from shotline.fal.errors import FalRequestFailed
from shotline.fal.generator import FalGenerator, build_fal_generator
from shotline.fal.ledger import LedgerState, RequestLedger
from shotline.generators.base import GenerationRequest
from shotline.hashing import sha256_file
from shotline.store import WorkStore
from testkit.fakes.fal_server import MODEL, FakeFal
from testkit.media_check import inspect_mp4

STORYBOARD = "harbor-teaser"


class Interrupt(BaseException):
    """Stands in for Dagster's DagsterExecutionInterruptedError (a BaseException)."""


def noisy_still(path: Path, size: tuple[int, int] = (320, 180), seed: int = 1) -> Path:
    """A still too big for a data URI (noise does not compress), so it goes to fal storage."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3) if seed else bytes(size[0] * size[1] * 3)).save(path)
    return path


def request_for(still: Path, shot: str = "s01", *, duration: int = 2, resolution: str = "480p") -> GenerationRequest:
    return GenerationRequest(
        storyboard_id=STORYBOARD,
        shot_id=shot,
        clip_key=f"clip-{shot}-{sha256_file(still)[:12]}-{resolution}-{duration}",
        prompt="slow dolly-in on fishing boats at dawn",
        image_path=still,
        image_sha256=sha256_file(still),
        image_width=320,
        image_height=180,
        duration=duration,
        resolution=resolution,  # type: ignore[arg-type]
    )


class Rig:
    """A generator wired to the fake as the pipeline wires it, with its database, budget and log."""

    def __init__(self, fake: FakeFal, home: Path) -> None:
        self.fake = fake
        self.home = home
        self.db: Database = open_database(sqlite_url(home))
        self.store = WorkStore(home)
        self.lines: list[str] = []

    def generator(self, *, budget_usd: float | None = None, **options: Any) -> FalGenerator:
        generator_options = {"sleep": lambda _s: None, "lookup_interval_s": 0.1, "max_run_s": 5.0}
        generator_options.update(options.pop("generator_options", {}))
        return build_fal_generator(
            store=self.store,
            db=self.db,
            key=SecretStr(self.fake.key),
            base_url=self.fake.url,
            rest_url=self.fake.rest_url,
            cdn_url=self.fake.cdn_url,
            api_url=self.fake.api_url,
            model=MODEL,
            budget_usd=budget_usd,
            poll_interval=0.01,
            max_poll_interval=0.05,
            backoff_base=0.01,
            generator_options=generator_options,
            **options,
        )

    def log(self, line: str) -> None:
        self.lines.append(line)

    def generate(self, gen: FalGenerator, request: GenerationRequest, on_line: Callable[[str], None] | None = None):
        def log(line: str) -> None:
            self.log(line)
            if on_line is not None:
                on_line(line)

        return gen.generate(request, self.home / "work", log)

    def attempts(self, request: GenerationRequest):
        return RequestLedger(self.db).attempts(request.clip_key)

    def committed_usd(self) -> Decimal:
        return Budget(self.db, None).spend().committed

    def reserved_usd(self) -> Decimal:
        return Budget(self.db, None).spend().reserved


@pytest.fixture
def rig(fake_fal: FakeFal, tmp_path: Path) -> Rig:
    return Rig(fake_fal, tmp_path / "home")


def result_gets(fake: FakeFal, request_id: str) -> int:
    return sum(1 for r in fake.seen("result") if r.request_id == request_id)


def assert_books_match_fal(rig: Rig, request: GenerationRequest) -> None:
    """The ledger's billed cost, the budget's committed spend and what fal billed agree, to the cent."""
    attempts = rig.attempts(request)
    billed_ids = [a.request_id for a in attempts if a.billed]
    assert billed_ids == [rid for rid in rig.fake.billed_request_ids if rid in {a.request_id for a in attempts}]
    ledger_cost = sum(Decimal(str(a.cost_usd or 0)) for a in attempts if a.billed)
    fal_cost = sum(Decimal(str(rig.fake.bills[rid].cost_usd)) for rid in billed_ids)
    assert ledger_cost == fal_cost
    assert rig.committed_usd() == fal_cost
    assert rig.reserved_usd() == 0


# -- cancels ----------------------------------------------------------------------------------------------


def test_an_ignored_cancel_is_followed_to_its_paid_video_and_never_replaced(rig: Rig, tmp_path: Path) -> None:
    rig.fake.cancel_mode = "ignore"
    request = request_for(noisy_still(tmp_path / "a.png"))
    gen = rig.generator()

    def interrupt_while_running(line: str) -> None:
        if line.endswith("in progress"):
            raise Interrupt

    with pytest.raises(Interrupt):
        rig.generate(gen, request, interrupt_while_running)
    (first,) = rig.attempts(request)
    assert first.state == LedgerState.CANCEL_REQUESTED
    assert len(rig.fake.cancels) == 1

    result = rig.generate(rig.generator(), request)  # the next run

    assert len(rig.fake.submits) == 1, "a replacement was submitted while the cancelled request could finish"
    assert result.request_id == first.request_id
    assert inspect_mp4(result.video_path).duration_s > 1.9  # every frame decodes
    (done,) = rig.attempts(request)
    assert (done.state, done.billed) == (LedgerState.COMPLETED, True)
    assert rig.fake.billed_request_ids == [first.request_id]
    assert_books_match_fal(rig, request)


def test_a_handled_cancel_is_unbilled_and_only_then_replaced(rig: Rig, tmp_path: Path) -> None:
    rig.fake.cancel_mode = "handle"
    request = request_for(noisy_still(tmp_path / "a.png"))

    def interrupt_while_running(line: str) -> None:
        if line.endswith("in progress"):
            raise Interrupt

    with pytest.raises(Interrupt):
        rig.generate(rig.generator(), request, interrupt_while_running)
    result = rig.generate(rig.generator(), request)

    first, second = rig.attempts(request)
    assert (first.state, first.billed, first.outcome) == (LedgerState.CANCELLED, False, "cancelled")
    assert (second.state, second.billed) == (LedgerState.COMPLETED, True)
    assert result.request_id == second.request_id
    assert rig.fake.billed_request_ids == [second.request_id]
    assert_books_match_fal(rig, request)


# -- stored errors: classified once -------------------------------------------------------------------------


def test_a_stored_retryable_model_error_is_read_once_unbilled_and_retried_by_itself(rig: Rig, tmp_path: Path) -> None:
    rig.fake.model_error(retryable=True, times=1)
    request = request_for(noisy_still(tmp_path / "a.png"))

    result = rig.generate(rig.generator(budget_usd=10), request)

    failed, done = rig.attempts(request)
    assert (failed.state, failed.outcome, failed.billed, failed.retryable) == (
        LedgerState.FAILED,
        "model_error",
        False,
        True,
    )
    assert failed.error_type == "internal_server_error"
    assert result_gets(rig.fake, failed.request_id or "") == 1, "a stored error was fetched again"
    assert done.state == LedgerState.COMPLETED and result.request_id == done.request_id
    assert len(rig.fake.submits) == 2
    assert rig.fake.billed_request_ids == [done.request_id]
    assert_books_match_fal(rig, request)


def test_a_non_retryable_model_error_fails_once_naming_shot_and_request(rig: Rig, tmp_path: Path) -> None:
    rig.fake.model_error(retryable=False, error_type="downstream_service_error", msg="xAI refused the frame")
    request = request_for(noisy_still(tmp_path / "a.png"))

    with pytest.raises(FalRequestFailed) as caught:
        rig.generate(rig.generator(budget_usd=10), request)

    (failed,) = rig.attempts(request)
    message = str(caught.value)
    assert STORYBOARD in message and "s01" in message and (failed.request_id or "?") in message
    assert "xAI refused the frame" in message
    assert result_gets(rig.fake, failed.request_id or "") == 1
    assert (failed.billed, failed.retryable) == (False, False)
    # a rerun refuses too, without another submit or another GET of the stored answer
    with pytest.raises(FalRequestFailed, match="shotline resubmit"):
        rig.generate(rig.generator(budget_usd=10), request)
    assert len(rig.fake.submits) == 1 and result_gets(rig.fake, failed.request_id or "") == 1
    assert rig.fake.billed_request_ids == []
    assert rig.committed_usd() == 0 and rig.reserved_usd() == 0


def test_a_runner_error_is_unbilled_and_retried(rig: Rig, tmp_path: Path) -> None:
    rig.fake.fail_requests(503, "runner_unavailable", "No runner available", times=1)
    request = request_for(noisy_still(tmp_path / "a.png"))

    rig.generate(rig.generator(budget_usd=10), request)

    failed, done = rig.attempts(request)
    assert (failed.outcome, failed.billed, failed.error_type) == ("runner_error", False, "runner_unavailable")
    assert done.state == LedgerState.COMPLETED
    assert_books_match_fal(rig, request)


def test_retries_stop_at_max_attempts_and_the_start_timeout_is_said_plainly(rig: Rig, tmp_path: Path) -> None:
    rig.fake.no_free_runner = True
    request = request_for(noisy_still(tmp_path / "a.png"))

    with pytest.raises(FalRequestFailed, match="SHOTLINE_FAL_MAX_ATTEMPTS=3") as caught:
        rig.generate(rig.generator(budget_usd=10, queue_timeout_s=0.3, max_attempts=3), request)

    attempts = rig.attempts(request)
    assert [a.outcome for a in attempts] == ["start_timeout"] * 3
    assert all(a.billed is False for a in attempts)
    assert "no free runner" in str(caught.value) or any("no free runner" in a.error for a in attempts if a.error)
    assert all(s.headers.get("x-fal-request-timeout") == "0.3" for s in rig.fake.submits)
    assert rig.fake.billed_request_ids == []
    assert rig.committed_usd() == 0 and rig.reserved_usd() == 0


def test_a_422_at_result_time_is_possibly_billed_and_counted_against_the_budget(rig: Rig, tmp_path: Path) -> None:
    rig.fake.content_policy()  # the partner's moderation refuses it once it runs: 422 on the result
    request = request_for(noisy_still(tmp_path / "a.png"))

    with pytest.raises(FalRequestFailed, match="content_policy_violation"):
        rig.generate(rig.generator(budget_usd=10), request)

    (failed,) = rig.attempts(request)
    assert (failed.outcome, failed.billed, failed.retryable) == ("input_error", None, False)
    assert rig.committed_usd() == Decimal(str(failed.estimated_cost_usd)), "a maybe-billed request must count"
    assert rig.reserved_usd() == 0


def test_billable_units_are_recorded_when_fal_sends_them(rig: Rig, tmp_path: Path) -> None:
    rig.fake.billable_units_header = True
    request = request_for(noisy_still(tmp_path / "a.png"))
    rig.generate(rig.generator(budget_usd=10), request)
    (done,) = rig.attempts(request)
    assert done.billable_units == rig.fake.bills[done.request_id or ""].units
    assert_books_match_fal(rig, request)


# -- stills on fal storage, media on the CDN ------------------------------------------------------------------


def test_stills_go_to_fal_storage_once_and_media_comes_from_the_cdn(rig: Rig, tmp_path: Path) -> None:
    still = noisy_still(tmp_path / "a.png")
    first = request_for(still, "s01")
    second = request_for(still, "s02", duration=3)
    gen = rig.generator()

    rig.generate(gen, first)
    rig.generate(gen, second)

    assert len(rig.fake.uploads) == 1, "the same still was uploaded twice"
    access_url = rig.fake.uploads[0][0]
    assert [s.json["image_url"] for s in rig.fake.submits] == [access_url, access_url]
    assert all(len(s.body) < 2048 for s in rig.fake.submits), "the submit body still carries the image"
    (done,) = rig.attempts(first)
    assert done.result is not None and done.result["video"]["url"].startswith(rig.fake.cdn_url)


def test_an_upload_that_stopped_serving_is_uploaded_again(rig: Rig, tmp_path: Path) -> None:
    still = noisy_still(tmp_path / "a.png")
    gen = rig.generator()
    rig.generate(gen, request_for(still, "s01"))
    rig.fake.expire_uploads()
    rig.generate(gen, request_for(still, "s02", duration=3))
    assert len(rig.fake.uploads) == 2
    assert rig.fake.submits[1].json["image_url"] == rig.fake.uploads[1][0]


def test_the_initiate_and_put_pair_stands_in_when_the_token_fails(rig: Rig, tmp_path: Path) -> None:
    rig.fake.token_fails = 10
    rig.generate(rig.generator(), request_for(noisy_still(tmp_path / "a.png")))
    assert [u[3] for u in rig.fake.uploads] == ["initiate"]


def test_a_tiny_still_goes_inline(rig: Rig, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (320, 180), (10, 20, 30)).save(tiny)
    assert tiny.stat().st_size <= 4096
    rig.generate(rig.generator(), request_for(tiny))
    assert rig.fake.uploads == []
    assert rig.fake.submits[0].json["image_url"].startswith("data:image/png;base64,")


# -- lost submits --------------------------------------------------------------------------------------------


def test_a_lost_submit_answer_is_found_in_the_listing_and_adopted(rig: Rig, tmp_path: Path) -> None:
    rig.fake.fail_next("submit", action="accept_and_drop")
    request = request_for(noisy_still(tmp_path / "a.png"))

    result = rig.generate(rig.generator(budget_usd=10), request)

    (adopted,) = rig.attempts(request)
    assert len(rig.fake.submits) == 1
    assert (adopted.origin, adopted.state) == ("adopted", LedgerState.COMPLETED)
    assert result.request_id == adopted.request_id == rig.fake.billed_request_ids[0]
    assert rig.fake.seen("unknown") == []
    assert_books_match_fal(rig, request)


def test_a_submit_that_never_reached_fal_is_given_up_only_after_its_window(rig: Rig, tmp_path: Path) -> None:
    rig.fake.fail_next("submit", action="drop")  # the connection dies before fal queues anything
    request = request_for(noisy_still(tmp_path / "a.png"))

    rig.generate(rig.generator(budget_usd=10, queue_timeout_s=0.5, generator_options={"max_run_s": 0.5}), request)

    lost, done = rig.attempts(request)
    assert (lost.outcome, lost.billed) == ("never_queued", False)
    assert done.state == LedgerState.COMPLETED
    assert len(rig.fake.submits) == 2
    assert sum("not in fal's listing yet" in line for line in rig.lines) >= 1
    assert_books_match_fal(rig, request)


def test_a_request_the_queue_forgot_is_answered_from_the_platform_listing(rig: Rig, tmp_path: Path) -> None:
    rig.fake.generation_s = 0.5  # fal runs it to the end whether anyone polls or not
    rig.fake.fail_next("cancel", action="drop", times=5)  # the worker dies before its cancel gets out
    request = request_for(noisy_still(tmp_path / "a.png"))

    def die_while_running(line: str) -> None:
        if line.endswith("in progress"):
            raise Interrupt

    with pytest.raises(Interrupt):
        rig.generate(rig.generator(), request, die_while_running)
    (open_attempt,) = rig.attempts(request)
    assert open_attempt.state == LedgerState.SUBMITTED
    time.sleep(0.6)
    rig.fake.expire_results()  # the next run comes after fal dropped the stored result

    result = rig.generate(rig.generator(), request)

    (done,) = rig.attempts(request)
    assert done.state == LedgerState.COMPLETED and result.request_id == open_attempt.request_id
    assert any("fal's listing says HTTP 200" in line for line in rig.lines)
    assert len(rig.fake.submits) == 1
    assert_books_match_fal(rig, request)


def test_a_request_fal_forgot_entirely_is_left_to_a_person(rig: Rig, tmp_path: Path) -> None:
    rig.fake.generation_s = 0.5
    rig.fake.fail_next("cancel", action="drop", times=5)
    request = request_for(noisy_still(tmp_path / "a.png"))

    def die_while_running(line: str) -> None:
        if line.endswith("in progress"):
            raise Interrupt

    with pytest.raises(Interrupt):
        rig.generate(rig.generator(), request, die_while_running)
    time.sleep(0.6)
    rig.fake.expire_results(from_listing_too=True)  # and its payloads are gone from the listing too

    with pytest.raises(FalRequestFailed, match="shotline resubmit"):
        rig.generate(rig.generator(), request)
    (lost,) = rig.attempts(request)
    assert (lost.outcome, lost.billed, lost.retryable) == ("unknown_to_fal", None, False)
    assert len(rig.fake.submits) == 1
