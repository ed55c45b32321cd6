"""What a terminated generation step says about the fal request it leaves: never a retry, always the state."""

from __future__ import annotations

from shotline.fal.interruption import interrupted
from shotline.fal.ledger import LedgerEntry, LedgerState

WHERE = "storyboard 'sb', shot 's01'"


def entry(state: LedgerState, request_id: str | None, billed: bool | None = None) -> LedgerEntry:
    return LedgerEntry(
        clip_key="k" * 64,
        state=state,
        storyboard_id="sb",
        shot_id="s01",
        model="xai/grok-imagine-video/v1.5/image-to-video",
        created_at="2026-12-02T00:00:00+00:00",
        updated_at="2026-12-02T00:00:00+00:00",
        request_id=request_id,
        billed=billed,
    )


def test_nothing_outstanding() -> None:
    stopped = interrupted(WHERE, None)
    assert stopped.description == f"{WHERE}: the run was terminated; no fal request was outstanding"
    assert stopped.metadata == {}


def test_a_submit_without_an_answer_is_possibly_billed() -> None:
    stopped = interrupted(WHERE, entry(LedgerState.SUBMITTING, None))
    assert (
        "outcome is unknown" in stopped.description and "adopts it before ever submitting again" in stopped.description
    )
    assert stopped.metadata == {"fal_state": "submitting", "billed": "unknown"}


def test_a_cancel_asked_for_is_followed_not_retried() -> None:
    stopped = interrupted(WHERE, entry(LedgerState.CANCEL_REQUESTED, "r-1"))
    assert "fal accepted a cancel of request r-1" in stopped.description and "Not retried" in stopped.description
    assert stopped.metadata["fal_request_id"] == "r-1" and stopped.metadata["billed"] == "unknown"


def test_a_request_that_could_not_be_cancelled_is_resumed() -> None:
    stopped = interrupted(WHERE, entry(LedgerState.SUBMITTED, "r-2", billed=False))
    assert "r-2 could not be cancelled and is submitted" in stopped.description
    assert stopped.metadata["billed"] is False and stopped.metadata["cost_usd"] == 0.0
