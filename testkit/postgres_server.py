"""A real PostgreSQL server on loopback for the whole test session: the `postgres` fixture.

The server is Debian's PostgreSQL (`/usr/lib/postgresql/<version>/bin`, the newest version there) or whatever
`initdb` is on PATH; `make test` installs Debian's `postgresql` package when neither is found. It is started
once per session on a free loopback port from a data folder in a fresh temporary folder, with trust
authentication and no fsync, and stopped (and the folder removed) at the end. PostgreSQL refuses to run as
root, so as root the server runs as the `postgres` user (which Debian's package creates) from a folder that
user owns.

When no server can be found or started the tests that use it FAIL, saying why: a Postgres test that is
skipped is a test that does not exist.

Registered by tests/conftest.py as a pytest plugin. What the fixture yields:

    postgres.host, postgres.port, postgres.user     where to connect (127.0.0.1, the port, the superuser)
    postgres.create_database() -> str               a new, empty database; returns its name
    postgres.url(db) -> str                         postgresql://user@127.0.0.1:port/db (a SQLAlchemy URL)
    postgres.storage(db) -> dict                    the `storage:` section of a dagster.yaml on that database
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg2
import pytest

SERVER_USER = "postgres"
HOST = "127.0.0.1"
INSTALL_HINT = "`make test` installs it (Debian: apt-get install --no-install-recommends postgresql)"


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def create_database(self) -> str:
        """A new, empty database owned by `user`; its name is fresh for every call."""
        name = f"shotline_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def url(self, db: str) -> str:
        """The SQLAlchemy URL of database `db` (no password: the server trusts loopback)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db}"

    def storage(self, db: str) -> dict[str, object]:
        """The `storage:` section of a dagster.yaml keeping Dagster's runs, events and schedules in `db`."""
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": "trust",
                    "db_name": db,
                    "scheme": "postgresql+psycopg2",  # as in deploy/: the driver dagster-postgres installs
                }
            }
        }


def _fail(message: str) -> NoReturn:
    pytest.fail(f"PostgreSQL test server: {message}", pytrace=False)


def _bindir() -> Path | None:
    """The newest Debian PostgreSQL's bin folder, else the folder of `initdb` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _major_version(initdb: str) -> tuple[int, str]:
    version = Path(initdb).parts[-3]
    return (int(version), version) if version.isdigit() else (-1, version)


def _as_server_user() -> list[str]:
    """The command prefix that runs the server's programs as an unprivileged user ([] when not root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        _fail("running as root, PostgreSQL must run as another user, and `runuser` (util-linux) is missing")
    if subprocess.run(["id", SERVER_USER], capture_output=True).returncode != 0:
        _fail(
            f"running as root, PostgreSQL must run as the {SERVER_USER!r} user, which does not exist; "
            f"Debian's postgresql package creates it: {INSTALL_HINT}"
        )
    return [runuser, "-u", SERVER_USER, "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _run(command: list[str], what: str, timeout: float) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        _fail(f"{what} did not finish within {timeout:.0f} s: {' '.join(command)}")
    if result.returncode != 0:
        _fail(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{result.stdout}{result.stderr}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _start(bindir: Path, prefix: list[str], root: Path) -> tuple[int, list[str]]:
    """initdb, then pg_ctl start on a free port (another try on a new port if the port was taken meanwhile)."""
    data = root / "data"
    _run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            SERVER_USER,
            "-E",
            "UTF8",
            "--no-locale",  # independent of which locales the machine has generated
            "--no-sync",
        ],
        "initdb",
        timeout=180,
    )
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    log = root / "server.log"
    for _ in range(3):
        port = _free_port()
        options = f"-h {HOST} -p {port} -k {root} -c fsync=off -c max_connections=200"
        start = [*ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"]
        try:
            result = subprocess.run(start, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, timeout=30)
            _fail(f"the server did not start within 90 s; its log:\n{_tail(log)}")
        if result.returncode == 0:
            return port, ctl
        if "could not bind" not in _tail(log):  # anything but a port taken between choosing it and binding
            break
    _fail(f"the server did not start: {result.stdout}{result.stderr}\nits log ({log}):\n{_tail(log)}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server on 127.0.0.1 for the test session (see the module's docstring)."""
    bindir = _bindir()
    if bindir is None:
        _fail(f"no server installed (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH); {INSTALL_HINT}")
    for program in ("initdb", "pg_ctl", "postgres"):
        if not (bindir / program).is_file():
            _fail(f"{bindir} has initdb but no {program}: the PostgreSQL server is not completely installed")
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="shotline-pg-"))
    ctl: list[str] = []
    try:
        if prefix:
            shutil.chown(root, SERVER_USER)
            if subprocess.run([*prefix, "test", "-w", str(root)], capture_output=True).returncode != 0:
                _fail(
                    f"the user {SERVER_USER!r} cannot write to {root}: a parent folder is not searchable by "
                    "other users; point TMPDIR at a folder that is (such as /tmp)"
                )
        port, ctl = _start(bindir, prefix, root)
        yield Postgres(HOST, port, SERVER_USER)
    finally:
        if ctl:
            subprocess.run([*ctl, "-m", "immediate", "-w", "-t", "30", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
