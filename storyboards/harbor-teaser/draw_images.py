"""Draws the demo storyboard's stills with Pillow, so the repository needs no downloaded images.

Run from the repository root: `.venv/bin/python storyboards/harbor-teaser/draw_images.py`. The output is
deterministic (fixed seeds), so the committed PNGs can be redrawn byte for byte.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent / "images"


def gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    w, h = size
    col = Image.new("RGB", (1, h))
    for y in range(h):
        t = y / (h - 1)
        col.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return col.resize((w, h))


def sea(img: Image.Image, horizon: int, colour: tuple[int, int, int], rng: random.Random) -> None:
    w, h = img.size
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, horizon, w, h], fill=colour)
    for _ in range(int(w * 0.6)):
        y = rng.randint(horizon + 4, h)
        x = rng.randint(0, w)
        length = rng.randint(8, 40) * (1 + (y - horizon) / (h - horizon))
        shade = tuple(min(255, c + rng.randint(20, 60)) for c in colour)
        draw.line([x, y, x + length, y], fill=shade, width=1 + (y - horizon) // 120)


def sun(img: Image.Image, centre: tuple[int, int], radius: int, colour: tuple[int, int, int]) -> None:
    glow = Image.new("RGB", img.size, (0, 0, 0))
    gd = ImageDraw.Draw(glow)
    for r in range(radius * 4, radius, -6):
        a = int(110 * (1 - r / (radius * 4)) ** 2)
        gd.ellipse([centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r], fill=(a, a * 3 // 4, a // 3))
    img.paste(ImageChops.screen(img, glow.filter(ImageFilter.GaussianBlur(12))))
    x, y = centre
    ImageDraw.Draw(img).ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)


def boat(draw: ImageDraw.ImageDraw, x: int, y: int, s: float, hull: tuple[int, int, int]) -> None:
    draw.polygon([(x, y), (x + 160 * s, y), (x + 130 * s, y + 40 * s), (x + 25 * s, y + 40 * s)], fill=hull)
    draw.rectangle([x + 70 * s, y - 150 * s, x + 76 * s, y], fill=(40, 30, 30))
    draw.polygon([(x + 78 * s, y - 140 * s), (x + 78 * s, y - 20 * s), (x + 150 * s, y - 25 * s)], fill=(235, 225, 205))
    draw.rectangle([x + 40 * s, y - 30 * s, x + 68 * s, y], fill=(200, 80, 60))


def draw_boats() -> Image.Image:
    rng = random.Random(1)
    img = gradient((1600, 900), (60, 70, 130), (250, 170, 110))
    sun(img, (1150, 520), 70, (255, 226, 160))
    sea(img, 560, (40, 70, 110), rng)
    d = ImageDraw.Draw(img)
    for i, (x, y, s) in enumerate([(180, 640, 1.4), (620, 600, 1.0), (980, 700, 1.8), (1350, 590, 0.8)]):
        boat(d, x, y, s, [(120, 40, 40), (30, 60, 90), (180, 150, 60), (60, 90, 60)][i])
    d.rectangle([0, 820, 1600, 900], fill=(70, 55, 45))
    for x in range(0, 1600, 90):
        d.rectangle([x, 790, x + 14, 900], fill=(50, 38, 30))
    return img


def draw_lighthouse() -> Image.Image:
    rng = random.Random(2)
    img = gradient((900, 1600), (20, 30, 70), (200, 120, 140))
    sea(img, 1150, (30, 45, 80), rng)
    d = ImageDraw.Draw(img)
    d.polygon([(0, 1250), (300, 1080), (620, 1120), (900, 1300), (900, 1600), (0, 1600)], fill=(45, 40, 45))
    x0, base, top = 380, 1130, 420
    for i in range(8):
        y1 = base - (base - top) * i / 8
        y2 = base - (base - top) * (i + 1) / 8
        w1 = 110 - 40 * i / 8
        w2 = 110 - 40 * (i + 1) / 8
        d.polygon(
            [(x0 - w1, y1), (x0 + w1, y1), (x0 + w2, y2), (x0 - w2, y2)],
            fill=(235, 235, 230) if i % 2 == 0 else (190, 40, 40),
        )
    d.rectangle([x0 - 80, top - 110, x0 + 80, top], fill=(60, 60, 70))
    d.rectangle([x0 - 60, top - 100, x0 + 60, top - 10], fill=(255, 240, 170))
    d.polygon([(x0 - 95, top - 110), (x0 + 95, top - 110), (x0, top - 190)], fill=(40, 40, 50))
    beam = Image.new("L", img.size, 0)
    ImageDraw.Draw(beam).polygon([(x0, top - 55), (900, top - 260), (900, top + 120)], fill=70)
    img.paste((255, 245, 200), mask=beam.filter(ImageFilter.GaussianBlur(25)))
    for _ in range(120):
        x, y = rng.randint(0, 900), rng.randint(0, 500)
        d.point((x, y), fill=(255, 255, 255))
    return img


def draw_market() -> Image.Image:
    rng = random.Random(3)
    img = gradient((1600, 900), (135, 190, 230), (230, 220, 200))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 620, 1600, 900], fill=(150, 130, 110))
    for i in range(0, 1600, 40):
        d.line([i, 620, i - 300 + i * 0.4, 900], fill=(135, 115, 95), width=2)
    x = 40
    while x < 1560:
        w = rng.randint(180, 300)
        stripe = [(200, 60, 50), (40, 110, 160), (230, 180, 50), (60, 140, 80)][rng.randint(0, 3)]
        d.rectangle([x, 420, x + w, 640], fill=(120, 90, 60))
        for sx in range(x, x + w, 30):
            d.polygon(
                [(sx, 360), (sx + 30, 360), (sx + 30, 430), (sx, 430)],
                fill=stripe if (sx // 30) % 2 else (245, 240, 230),
            )
        for _ in range(14):
            fx, fy = rng.randint(x + 10, x + w - 30), rng.randint(470, 600)
            c = [(230, 120, 40), (200, 40, 40), (240, 210, 60), (90, 170, 60)][rng.randint(0, 3)]
            d.ellipse([fx, fy, fx + 24, fy + 24], fill=c)
        x += w + rng.randint(30, 70)
    for _ in range(9):
        px, py = rng.randint(50, 1550), rng.randint(660, 820)
        c = (rng.randint(30, 200), rng.randint(30, 200), rng.randint(30, 200))
        d.ellipse([px, py - 110, px + 34, py - 76], fill=(220, 180, 150))
        d.rounded_rectangle([px - 8, py - 76, px + 42, py], radius=14, fill=c)
    return img


def draw_gulls() -> Image.Image:
    rng = random.Random(4)
    img = gradient((1600, 1000), (90, 150, 210), (215, 230, 240))
    d = ImageDraw.Draw(img)
    for _ in range(7):
        cx, cy, r = rng.randint(0, 1600), rng.randint(80, 500), rng.randint(60, 140)
        for k in range(5):
            d.ellipse([cx + k * r * 0.5 - r, cy - r * 0.5, cx + k * r * 0.5 + r, cy + r * 0.5], fill=(250, 250, 252))
    for _ in range(16):
        x, y, s = rng.randint(80, 1500), rng.randint(150, 750), rng.uniform(0.6, 1.8)
        wing = 60 * s
        lift = rng.uniform(-0.5, 0.5)
        pts = [
            (x - wing, y - wing * (0.35 + lift * 0.3)),
            (x - wing * 0.45, y - wing * 0.05),
            (x, y + 4 * s),
            (x + wing * 0.45, y - wing * 0.05),
            (x + wing, y - wing * (0.35 - lift * 0.3)),
        ]
        d.line(pts, fill=(60, 60, 70), width=max(2, int(5 * s)), joint="curve")
    d.polygon([(0, 880), (1600, 840), (1600, 1000), (0, 1000)], fill=(60, 90, 120))
    return img


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, fn in {
        "boats": draw_boats,
        "lighthouse": draw_lighthouse,
        "market": draw_market,
        "gulls": draw_gulls,
    }.items():
        fn().save(HERE / f"{name}.png", optimize=True)
        print(f"drew images/{name}.png")


if __name__ == "__main__":
    main()
