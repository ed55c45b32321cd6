"""`shotline requests` and `shotline resubmit` on a real ledger made by the fal generator against the fake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shotline.fal.errors import FalRequestFailed
from shotline.fal.ledger import LedgerState
from testkit.fakes.fal_server import FakeFal
from tests.integration.test_fal_money import Rig, noisy_still, request_for

SHOTLINE = str(Path(sys.executable).with_name("shotline"))


def cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOTLINE, *args],
        env={"PATH": "/usr/bin:/bin", "SHOTLINE_HOME": str(home)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def rig(fake_fal: FakeFal, tmp_path: Path) -> Rig:
    return Rig(fake_fal, tmp_path / "home")


def test_requests_lists_every_attempt_with_billing(rig: Rig, tmp_path: Path) -> None:
    rig.fake.fail_requests(503, "runner_unavailable", "No runner available", times=1)
    request = request_for(noisy_still(tmp_path / "a.png"))
    rig.generate(rig.generator(), request)

    done = cli(rig.home, "requests", "harbor-teaser/s01", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["attempt"], r["fal_state"], r["billed"]) for r in rows] == [(1, "failed", False), (2, "completed", True)]
    assert rows[1]["cost_usd"] == rig.fake.billed_total_usd

    table = cli(rig.home, "requests", "harbor-teaser")
    assert "runner_error" in table.stdout and "2 attempt(s)" in table.stdout
    assert rig.fake.key not in table.stdout + done.stdout


def test_resubmit_pays_for_one_new_request_only_when_confirmed(rig: Rig, tmp_path: Path) -> None:
    rig.fake.model_error(retryable=False, error_type="downstream_service_error", msg="xAI said no", times=1)
    request = request_for(noisy_still(tmp_path / "a.png"))
    with pytest.raises(FalRequestFailed):
        rig.generate(rig.generator(), request)

    refused = cli(rig.home, "resubmit", "harbor-teaser/s01", stdin="n\n")
    assert refused.returncode == 2 and "--yes" in refused.stderr  # not a terminal: it will not guess
    with pytest.raises(FalRequestFailed):
        rig.generate(rig.generator(), request)
    assert len(rig.fake.submits) == 1

    accepted = cli(rig.home, "resubmit", "harbor-teaser/s01", "--yes")
    assert accepted.returncode == 0, accepted.stderr
    assert "a new request costs $0.17" in accepted.stdout
    result = rig.generate(rig.generator(), request)

    assert len(rig.fake.submits) == 2 and result.request_id == rig.fake.billed_request_ids[0]
    states = [a.state for a in rig.attempts(request)]
    assert states == [LedgerState.FAILED, LedgerState.RESUBMIT_REQUESTED, LedgerState.COMPLETED]
    again = cli(rig.home, "resubmit", "harbor-teaser/s01", "--yes")
    assert again.returncode == 1 and "has its clip" in again.stderr
