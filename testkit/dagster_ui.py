"""`dagster dev` (webserver, daemon, code server) on loopback, driven through the GraphQL API the UI uses.

Used by tests/integration/test_backfill.py and bench/backfill.py. The service runs in its own session;
`stop()` interrupts it as Ctrl-C would, then kills whatever of its process tree is left (run workers
included) and reports any process that outlived it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
CLIP_ASSETS = ("source_image", "clip_prompt", "raw_clip", "final_clip", "published_clip")

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""
CANCEL_BACKFILL = """
mutation($id: String!) {
  cancelPartitionBackfill(backfillId: $id) {
    __typename
    ... on CancelBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions }
    ... on PythonError { message }
  }
}
"""
LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dev_instance_yaml(overrides: Mapping[str, Any] | None = None) -> str:
    """The repository's development profile (deploy/dagster.dev.yaml), with `overrides` merged in (mappings
    deeply)."""
    return yaml.safe_dump(
        _merged(yaml.safe_load((REPO / "deploy" / "dagster.dev.yaml").read_text()), overrides or {}), sort_keys=False
    )


def _merged(base: Any, overrides: Mapping[str, Any]) -> Any:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dagster_cli(*args: str, env: Mapping[str, str]) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie is gone, only not yet reaped
        return None
    return int(fields[3])


def processes_in_session(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _session_of(int(entry.name)) == sid:
            pids.append(int(entry.name))
    return pids


class DagsterDev:
    """`dagster dev -w workspace.yaml` from the repository root, with the given environment."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self, timeout_s: float = 120) -> DagsterDev:
        command = [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                entries = self.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    if errors:
                        raise RuntimeError(f"the code location failed to load: {errors}")
                    return self
            time.sleep(0.5)
        raise TimeoutError(f"dagster dev did not load the workspace in {timeout_s:g} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": dict(variables or {})})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    # -- what the UI's "Materialize > partitions" dialog and the Backfills tab do -----------------------

    def launch_backfill(
        self, partitions: Sequence[str], assets: Sequence[str] = CLIP_ASSETS, title: str | None = None
    ) -> str:
        params: dict[str, Any] = {
            "partitionNames": list(partitions),
            "assetSelection": [{"path": [a]} for a in assets],
            "fromFailure": False,
            "tags": [],
        }
        if title:
            params["title"] = title
        answer = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if answer["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {answer}")
        return answer["backfillId"]

    def cancel_backfill(self, backfill_id: str) -> None:
        answer = self.graphql(CANCEL_BACKFILL, {"id": backfill_id})["cancelPartitionBackfill"]
        if answer["__typename"] != "CancelBackfillSuccess":
            raise RuntimeError(f"backfill not cancelled: {answer}")

    def backfill_status(self, backfill_id: str) -> str:
        answer = self.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if answer["__typename"] != "PartitionBackfill":
            raise RuntimeError(f"no such backfill: {answer}")
        return answer["status"]

    # -- stopping -----------------------------------------------------------------------------------------

    def stop(self, timeout_s: float = 30) -> list[int]:
        """Stop the whole process tree; return the pids that had to be killed after the graceful stop."""
        self.client.close()
        if self.proc is None:
            return []
        sid = self.proc.pid  # the session leader: every child and run worker is in its session
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # dagster dev shuts its children down on Ctrl-C
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while processes_in_session(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftovers = processes_in_session(sid)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while processes_in_session(sid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return leftovers


@contextlib.contextmanager
def dagster_dev(env: Mapping[str, str], log_path: Path) -> Iterator[DagsterDev]:
    service = DagsterDev(env, log_path)
    try:
        yield service.start()
    finally:
        service.stop()


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.5, explain: Any = None) -> Any:
    """Poll `predicate` until it returns something true; on time-out, say what `explain()` knows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    details = f"\n{explain()}" if explain is not None else ""
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}{details}")


def run_failures(instance: Any, backfill_id: str) -> str:
    """The status of each run of a backfill, and the first error of each failed one."""
    import dagster as dg

    lines = []
    for run in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
        lines.append(f"{run.tags.get('dagster/partition')}: {run.status.value}")
        if run.status == dg.DagsterRunStatus.FAILURE:
            for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)[:1]:
                error = record.dagster_event.step_failure_data.error
                lines.append(f"    {error.message.strip() if error else record.message}")
    return "\n".join(lines) or "no run yet"
