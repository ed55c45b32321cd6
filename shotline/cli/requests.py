"""`shotline requests <storyboard>[/<shot>]`: every fal request the ledger holds for a storyboard or a shot,
attempt by attempt: state, outcome, whether fal billed it, what it cost, its request id. `--json` for scripts."""

from __future__ import annotations

import argparse
import json

from shotline.config import Settings
from shotline.db import open_database
from shotline.fal.ledger import LedgerEntry, RequestLedger

_BILLED = {True: "billed", False: "unbilled", None: "maybe"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("requests", help="every fal request recorded for a storyboard or one shot", description=__doc__)
    p.add_argument("target", help="<storyboard_id> or <storyboard_id>/<shot_id>")
    p.add_argument("--json", action="store_true", help="the ledger records as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    storyboard_id, _, shot_id = args.target.strip("/").partition("/")
    entries = RequestLedger(open_database(settings.database_target)).for_storyboard(storyboard_id, shot_id or None)
    if args.json:
        print(json.dumps([e.public_view() for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no fal requests recorded for {args.target}")
        return 0
    print(render(entries))
    return 0


def render(entries: list[LedgerEntry]) -> str:
    lines = [f"{'shot':<24} {'#':>2} {'state':<18} {'outcome':<16} {'billed':<8} {'cost':>7}  request id / note"]
    for e in entries:
        cost = f"${e.cost_usd:.2f}" if e.cost_usd is not None else f"~${e.estimated_cost_usd:.2f}"
        note = e.request_id or (e.error or "")[:60]
        lines.append(
            f"{e.shot_id:<24} {e.attempt:>2} {e.state.value:<18} {e.outcome or '':<16} {_BILLED[e.billed]:<8} "
            f"{cost:>7}  {note}"
        )
    billed = sum(e.cost_usd or 0.0 for e in entries if e.billed is not False)
    lines.append(f"{len(entries)} attempt(s), ${billed:.2f} billed or possibly billed")
    return "\n".join(lines)
