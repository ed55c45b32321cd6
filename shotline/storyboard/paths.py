"""Files a storyboard names, held inside its folder: no `..`, no absolute path, no symlink out."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class PathRefused(ValueError):
    """A path that does not name a regular file inside its folder; the message says why."""


def resolve_inside(root: str | Path, spec: str, what: str = "image") -> Path:
    """The real path of `spec`, a relative path inside `root`: no `..`, no absolute path, no symlink that
    leads out, a regular file (not a folder, FIFO or device). Raises PathRefused."""
    if any(ord(c) < 32 or ord(c) == 127 for c in spec):
        raise PathRefused(f"the {what} path contains control characters")
    rel = PurePosixPath(spec.replace("\\", "/"))
    if rel.is_absolute() or Path(spec).is_absolute():
        raise PathRefused(f"absolute paths are refused; the {what} must stay inside the storyboard folder ({spec})")
    if ".." in rel.parts:
        raise PathRefused(
            f"'..' is refused in {what} paths; the {what} must stay inside the storyboard folder ({spec})"
        )
    base = Path(root).resolve()
    try:
        real = base.joinpath(*rel.parts).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a name the OS refuses
        raise PathRefused(f"{what} file not found in the storyboard folder: {spec}") from None
    if not real.is_relative_to(base):
        raise PathRefused(f"{what} path leads outside the storyboard folder (through a symlink): {spec}")
    if not real.is_file():
        raise PathRefused(f"not a regular file: {spec}")
    return real
