"""Which storyboards changed since the last look, without reading them: fingerprints of a storyboard folder's
files (path, size, modification time), compared with those recorded then.

Reading a storyboard (parse, validate, hash its images) costs far more than looking at its files' sizes and
times, so a watcher re-reads only the storyboards whose fingerprint moved. Looking is in two parts:

- every look stats each storyboard's folders and its storyboard file (a "quick" fingerprint): a file added,
  removed or renamed changes its folder's time, and most edits are to the storyboard file. A storyboard whose
  quick fingerprint moved is fingerprinted in full (every file) right away;
- every file is also stat'ed in turn, a budget of SWEEP_FILES files per look, so that an image overwritten in
  place (which changes no folder's time) is noticed too: at the next look in a catalogue of up to SWEEP_FILES
  files, within ceil(files / SWEEP_FILES) looks in a bigger one. That keeps a look over tens of thousands of
  shots about as cheap as one over a thousand.

An `s3://` location is read through snapshots (shotline.storyboard_source) in which an object whose ETag did
not change is a hard link to the previous snapshot's file: same size, same time, so a full fingerprint follows
the ETags (each new snapshot has new folders: its storyboards are fingerprinted in full, and only those whose
objects changed are read again).

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
SWEEP_FILES = 4000
_MASK = (1 << 64) - 1
_NAME_CRC: dict[str, int] = {}  # the same names come back at every look


@dataclass(frozen=True)
class BoardFiles:
    """What a look knew of one storyboard folder."""

    fingerprint: str | None  # of every file; None: too fresh to trust (or unreadable)
    quick: str  # of its folders' times and its storyboard file
    dirs: tuple[str, ...]  # its folders, relative to it ("" is the folder itself)

    def as_json(self) -> dict[str, object]:
        return {"fingerprint": self.fingerprint, "quick": self.quick, "dirs": list(self.dirs)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BoardFiles | None:
        dirs = data.get("dirs")
        if not isinstance(dirs, list) or not isinstance(data.get("quick"), str):
            return None
        fingerprint = data.get("fingerprint")
        return cls(fingerprint if isinstance(fingerprint, str) else None, str(data["quick"]), tuple(map(str, dirs)))


@dataclass
class Changes:
    """What a look found: the storyboards to read (new or changed), those gone, what is known of every one now,
    and where the next look's sweep starts."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    boards: dict[str, BoardFiles] = field(default_factory=dict)
    sweep_next: str | None = None


def look(
    root: Path,
    previous: Mapping[str, BoardFiles],
    *,
    skip: Container[str] = (),
    sweep_from: str | None = None,
    sweep_files: int = SWEEP_FILES,
    now: float | None = None,
) -> Changes:
    """Compare every storyboard under `root` (but those in `skip`) with what `previous` knew of it."""
    settled_before = (time.time() if now is None else now) - SETTLE_S
    changes = Changes()
    names = sorted(name for name in _folders(root) if name not in skip)
    steady = []
    base = str(root)
    for name in names:
        # plain strings, not Path objects: a look joins thousands of paths, and pathlib would double its time
        folder, known = os.path.join(base, name), previous.get(name)
        quick = quick_fingerprint(folder, known.dirs) if known is not None else None
        if known is None or quick != known.quick or known.fingerprint is None:
            board = full_fingerprint(folder, settled_before=settled_before)
            if board is None:  # it stopped being a storyboard folder while we looked
                continue
            changes.boards[name] = board
            if known is None or board.fingerprint is None or board.fingerprint != known.fingerprint:
                changes.changed.append(name)
        else:
            changes.boards[name] = known
            steady.append(name)
    changes.sweep_next = _sweep(root, steady, changes, sweep_from, sweep_files, settled_before)
    changes.removed = sorted(name for name in previous if name not in changes.boards and name not in skip)
    return changes


def _sweep(
    root: Path, steady: list[str], changes: Changes, start: str | None, budget: int, settled_before: float
) -> str | None:
    """Fingerprint in full the steady storyboards from `start` on (in name order, round), up to `budget`
    files; returns where the next sweep starts."""
    if not steady:
        return None
    first = next((i for i, name in enumerate(steady) if start is not None and name >= start), 0)
    order = steady[first:] + steady[:first]
    spent = 0
    for i, name in enumerate(order):
        if spent >= budget and i > 0:
            return name
        board = full_fingerprint(os.path.join(str(root), name), settled_before=settled_before)
        if board is None:
            continue
        spent += board.files
        if board.fingerprint != changes.boards[name].fingerprint:
            changes.changed.append(name)
        changes.boards[name] = BoardFiles(board.fingerprint, board.quick, board.dirs)
    return order[0]


@dataclass(frozen=True)
class _Scanned(BoardFiles):
    files: int = 0


def full_fingerprint(folder: str | Path, *, settled_before: float) -> _Scanned | None:
    """Both fingerprints of `folder`, from every file and folder in it but hidden ones; None if it holds no
    storyboard file (any more). The full fingerprint is None when a file was modified after `settled_before`."""
    dirs, total, files, newest = [""], 0, 0, 0
    stack = [(str(folder), "")]
    while stack:
        path, rel = stack.pop()
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_dir():
                stack.append((entry.path, rel + name + "/"))
                dirs.append(rel + name)
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # removed while we looked: the next look sees it gone
                continue
            # each file adds crc(name) x f(time, size): the order files are listed in does not matter, and a
            # change to the name, size or time of any one of them (or two names swapping files) moves the sum
            total += _crc(rel + name) * ((st.st_mtime_ns * 0x9E3779B97F4A7C15 + st.st_size) & _MASK)
            newest = max(newest, st.st_mtime_ns)
            files += 1
    quick = quick_fingerprint(folder, tuple(dirs))
    if quick is None:
        return None
    fingerprint = f"{files:x}-{total & _MASK:016x}" if newest <= settled_before * 1e9 else None
    return _Scanned(fingerprint, quick, tuple(sorted(dirs)), files)


def quick_fingerprint(folder: str | Path, dirs: tuple[str, ...]) -> str | None:
    """A digest of the times of `folder`'s folders `dirs` and of its storyboard file's size and time; None if
    the folder holds no storyboard file."""
    folder = str(folder)
    try:
        st = os.stat(os.path.join(folder, STORYBOARD_FILE))
    except (FileNotFoundError, NotADirectoryError):
        return None
    total = _crc(STORYBOARD_FILE) * ((st.st_mtime_ns * 0x9E3779B97F4A7C15 + st.st_size) & _MASK)
    for rel in dirs:
        try:
            mtime = os.stat(os.path.join(folder, rel) if rel else folder).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            mtime = 0
        total += _crc(rel + "/") * ((mtime * 0x9E3779B97F4A7C15) & _MASK)
    return f"{total & _MASK:016x}"


def _crc(name: str) -> int:
    crc = _NAME_CRC.get(name)
    if crc is None:
        if len(_NAME_CRC) > 1_000_000:
            _NAME_CRC.clear()
        crc = _NAME_CRC[name] = zlib.crc32(name.encode()) + 1
    return crc


def _folders(root: Path) -> list[str]:
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]


def storyboard_folders(root: Path) -> dict[str, Path]:
    """The folders directly under `root` that hold a storyboard file, by name."""
    return {name: root / name for name in _folders(root) if (root / name / STORYBOARD_FILE).is_file()}
