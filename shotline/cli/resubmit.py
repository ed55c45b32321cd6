"""`shotline resubmit <storyboard>/<shot> [--yes]`: pay for a fresh fal request for a shot deliberately.

For a shot whose requests ended in a way shotline does not retry by itself (billed or possibly billed
failures, a rejected video, the attempt limit): it shows what the new request will cost, asks, and records
the decision in the ledger, so the next run of the shot (a Dagster run or `make demo`) submits once more. A
shot with a request still in flight, or whose clip is done, is left alone: for a new take, raise the shot's
`take` in the storyboard.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from shotline.config import Settings
from shotline.db import open_database
from shotline.fal.ledger import LedgerState, RequestLedger
from shotline.fal.pricing import estimate_cost


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("resubmit", help="pay for a new fal request for a shot, deliberately", description=__doc__)
    p.add_argument("target", help="<storyboard_id>/<shot_id>")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    storyboard_id, _, shot_id = args.target.strip("/").partition("/")
    if not shot_id:
        print("shotline resubmit: name a shot: <storyboard_id>/<shot_id>", file=sys.stderr)
        return 2
    ledger = RequestLedger(open_database(settings.database_target))
    entries = ledger.for_storyboard(storyboard_id, shot_id)
    if not entries:
        print(f"shotline resubmit: no fal request recorded for {args.target}; just run the shot", file=sys.stderr)
        return 1
    last = max(entries, key=lambda e: (e.created_at, e.attempt))
    attempts = ledger.attempts(last.clip_key)
    open_one = next((a for a in attempts if a.is_open), None)
    if open_one is not None and open_one.state != LedgerState.SUBMITTING:
        print(
            f"shotline resubmit: request {open_one.request_id or '(submit outcome being looked up)'} of "
            f"{args.target} is still {open_one.state.value}: the next run follows it; nothing to resubmit",
            file=sys.stderr,
        )
        return 1
    if open_one is not None:  # a submit whose answer was lost and could not be looked up: a person decides
        print(
            f"{args.target}: the answer to submit attempt {open_one.attempt} (sent {open_one.sent_at}) was lost; "
            "fal may have queued and billed it. Resubmitting gives it up (it stays recorded as possibly billed)"
        )
    elif attempts[-1].state == LedgerState.COMPLETED:
        print(
            f"shotline resubmit: {args.target} has its clip (request {attempts[-1].request_id}); for another take "
            "raise the shot's `take` in the storyboard",
            file=sys.stderr,
        )
        return 1
    elif attempts[-1].state == LedgerState.RESUBMIT_REQUESTED:
        print(f"{args.target}: a resubmit is already requested; run the shot")
        return 0
    resolution = str(last.parameters.get("resolution", "720p"))
    duration = int(last.parameters.get("duration", 6))
    cost = estimate_cost(resolution, duration)
    spent = ledger.spent_usd(last.clip_key)
    print(f"{args.target}: {len(attempts)} earlier request(s), ${spent:.2f} billed or possibly billed so far")
    print(f"  last: {attempts[-1].state.value}, {attempts[-1].error or ''}".rstrip(", "))
    print(f"a new request costs ${cost} ({duration} s at {resolution})")
    if not args.yes:
        if not sys.stdin.isatty():
            print("shotline resubmit: not a terminal; pass --yes to confirm", file=sys.stderr)
            return 2
        if input("pay for it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return 1
    by = getpass.getuser()
    if open_one is not None:
        ledger.mark_failed(
            open_one,
            outcome="abandoned",
            error=f"submit outcome unknown; given up by {by} (shotline resubmit)",
            error_type=None,
            billed=None,
            retryable=False,
        )
    ledger.request_resubmit(ledger.attempts(last.clip_key)[-1], by=by)
    print(f"recorded: the next run of {args.target} submits a new request")
    return 0
