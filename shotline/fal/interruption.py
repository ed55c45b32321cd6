"""What a terminated run says about the fal request it leaves behind, and why it must not be retried."""

from __future__ import annotations

from pydantic import BaseModel

from shotline.fal.ledger import LedgerEntry, LedgerState


class Interruption(BaseModel):
    """The failure a terminated generation step reports: a description for people, metadata for the UI."""

    description: str
    metadata: dict[str, str | float | bool] = {}


def interrupted(where: str, entry: LedgerEntry | None) -> Interruption:
    """Why the step stops for good: a retry would pay for a new request while the last one may still run."""
    if entry is None:
        return Interruption(description=f"{where}: the run was terminated; no fal request was outstanding")
    rid = entry.request_id
    if rid is None:
        return Interruption(
            description=f"{where}: the run was terminated during the fal submit, so its outcome is unknown "
            "(it may have been queued and billed); the next run of this shot looks the request up in fal's "
            "listing and adopts it before ever submitting again",
            metadata={"fal_state": entry.state.value, "billed": "unknown"},
        )
    if entry.state == LedgerState.CANCEL_REQUESTED:
        outcome = (
            f"fal accepted a cancel of request {rid}, but fal may still run it to the end (and bill it). Not "
            "retried: the next run of this shot follows that request first and uses its video if it comes; only "
            "once fal proves the cancel does it submit a new one"
        )
    else:
        outcome = (
            f"fal request {rid} could not be cancelled and is {entry.state.value}; "
            "running the shot again resumes it instead of paying for a new one"
        )
    return Interruption(
        description=f"{where}: the run was terminated while generating; {outcome}",
        metadata={
            "fal_request_id": rid,
            "fal_state": entry.state.value,
            "billed": "unknown" if entry.billed is None else bool(entry.billed),
            "cost_usd": entry.cost_usd or 0.0,
        },
    )
