"""Which storyboards changed since the last look, without reading them: a fingerprint of every file and folder
in a storyboard's folder (path, size, modification time), compared with the one recorded then.

Reading a storyboard (parse, validate, hash its images) costs far more than looking at its files' sizes and
times, so a watcher re-reads only the storyboards whose fingerprint moved. An `s3://` location is read
through snapshots (shotline.storyboard_source) in which an object whose ETag did not change is a hard link to
the previous snapshot's file: same size, same time, so the fingerprint follows the ETags.

A file written less than SETTLE_S before the look is not trusted yet: a second write within the same tick of
the file system's clock would leave its size and time as they were. Such a storyboard gets no fingerprint
and is read again at the next look.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shotline.storyboard import STORYBOARD_FILE

SETTLE_S = 2.0
_MASK = (1 << 64) - 1


@dataclass
class Changes:
    """What a look found: the storyboards to read (new or changed), those gone, and every fingerprint now
    (None for a storyboard whose files are too fresh to trust, which is always read)."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    fingerprints: dict[str, str | None] = field(default_factory=dict)


def folder_fingerprint(folder: Path, *, settled_before: float) -> str | None:
    """A digest of every file and folder under `folder` but hidden ones (relative path, size, mtime); None
    if one was modified after `settled_before` (a time.time() value)."""
    try:
        top = os.stat(folder)
    except FileNotFoundError:
        return None
    # Each entry adds crc(name) x f(time, size): the order entries are listed in does not matter, and a change
    # to the name, size or time of any one of them (or two names swapping their files) changes the sum.
    total, count, newest = _mix(0, top.st_mtime_ns, top.st_size), 0, top.st_mtime_ns
    stack = [(str(folder), "")]
    while stack:
        path, rel = stack.pop()
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = rel + entry.name
            try:
                st = entry.stat()
            except FileNotFoundError:  # removed while we looked: the next look sees it gone
                continue
            if entry.is_dir():
                stack.append((entry.path, name + "/"))
            total += _mix(zlib.crc32(name.encode()), st.st_mtime_ns, st.st_size)
            newest = max(newest, st.st_mtime_ns)
            count += 1
    if newest > settled_before * 1e9:
        return None
    return f"{count:x}-{total & _MASK:016x}"


def _mix(name_crc: int, mtime_ns: int, size: int) -> int:
    return (name_crc + 1) * ((mtime_ns * 0x9E3779B97F4A7C15 + size) & _MASK)


def storyboard_folders(root: Path) -> dict[str, Path]:
    """The folders directly under `root` that hold a storyboard file, by name."""
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {
        e.name: Path(e.path)
        for e in entries
        if not e.name.startswith(".") and e.is_dir() and os.path.isfile(os.path.join(e.path, STORYBOARD_FILE))
    }


def look(
    root: Path,
    previous: Mapping[str, str | None],
    *,
    skip: Container[str] = (),
    now: float | None = None,
) -> Changes:
    """Compare every storyboard under `root` (but those in `skip`) with its `previous` fingerprint."""
    settled_before = (time.time() if now is None else now) - SETTLE_S
    changes = Changes()
    folders = storyboard_folders(root)
    for name in sorted(folders):
        if name in skip:
            continue
        fingerprint = folder_fingerprint(folders[name], settled_before=settled_before)
        changes.fingerprints[name] = fingerprint
        if fingerprint is None or previous.get(name) != fingerprint:
            changes.changed.append(name)
    changes.removed = sorted(name for name in previous if name not in folders and name not in skip)
    return changes
