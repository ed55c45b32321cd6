"""Build small storyboards on disk for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (640, 360), colour: tuple[int, int, int] = (40, 90, 160)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    for x in range(0, size[0], 40):
        for y in range(0, size[1], 40):
            if (x // 40 + y // 40) % 2:
                img.paste((230, 200, 80), (x, y, x + 20, y + 20))
    img.save(path)
    return path


def write_storyboard(
    root: Path,
    data: dict[str, Any],
    *,
    images: dict[str, tuple[int, int]] | None = None,
    templates: dict[str, str] | None = None,
) -> Path:
    folder = root / data["id"]
    folder.mkdir(parents=True, exist_ok=True)
    for rel, size in (images or {}).items():
        write_image(folder / rel, size)
    for name, text in (templates or {}).items():
        (folder / "templates").mkdir(exist_ok=True)
        (folder / "templates" / f"{name}.j2").write_text(text)
    (folder / "storyboard.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return folder


def tiny_storyboard(
    root: Path, storyboard_id: str = "tiny", n_shots: int = 2, duration: int = 2, resolution: str = "480p"
) -> Path:
    shots = [
        {
            "id": f"s{i:02d}",
            "image": f"images/s{i:02d}.png",
            "prompt": "slow push-in on {{ subject }}",
            "vars": {"subject": f"thing {i}"},
            "caption": f"Shot {i}",
        }
        for i in range(1, n_shots + 1)
    ]
    data = {
        "id": storyboard_id,
        "title": "Tiny",
        "defaults": {"duration": duration, "resolution": resolution, "fade": 0.2},
        "shots": shots,
        "reel": {"transition": "crossfade", "transition_seconds": 0.3},
    }
    return write_storyboard(root, data, images={s["image"]: (640, 360) for s in shots})
