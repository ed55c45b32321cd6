"""What content credentials cost, against the final encode measured in the same run on this machine.

Synthetic 720p clips (lavfi picture and sound, like a generated clip) are finished to a deliverable
(`render_final`: trim, caption, fades, loudness, H.264 encode) and then signed with a fal clip's manifest (the
still and the generated clip as ingredients); the signed clips are cut into a reel (`render_reel`), which is
signed with each signed clip as an ingredient. Signing and verifying are repeated `--reps` times each.
Printed, per clip and for the reel: the encode's wall seconds, signing's median milliseconds and its share of
the encode, the bytes the manifest adds (and as a share of the file), and verifying's median milliseconds.

    python bench/credentials.py [--clips 4] [--duration 4] [--preset medium] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from shotline.credentials.keys import load_signing_keys
from shotline.credentials.manifest import (
    ClipProvenance,
    ReelPart,
    ReelProvenance,
    SourceFile,
    clip_plan,
    reel_plan,
)
from shotline.credentials.settings import CredentialSettings
from shotline.credentials.signing import ContentSigner
from shotline.credentials.verification import verify_file
from shotline.hashing import sha256_file
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.media.postprocess import FinishSpec, render_final
from shotline.media.reel import render_reel

MODEL = "xai/grok-imagine-video/v1.5/image-to-video"


def make_source(path: Path, duration: float, seed: int) -> Path:
    """A 720p H.264/AAC clip with moving picture and breathing pink noise, like a generated one."""
    audio = f"anoisesrc=color=pink:seed={seed}:amplitude=0.1:r=48000,volume='0.6+0.4*sin(2*PI*0.7*t)':eval=frame"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-t", str(duration), "-i",
         "testsrc2=size=1280x720:rate=24", "-f", "lavfi", "-t", str(duration), "-i", audio,
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
         "-movflags", "+faststart", str(path)],
        check=True,
    )  # fmt: skip
    return path


def median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def row(name: str, encode_s: float, sign_ms: float, added: int, size: int, verify_ms: float) -> str:
    share = sign_ms / 1000 / encode_s * 100
    return (
        f"{name:<10} {encode_s:>8.2f} s {sign_ms:>9.1f} ms {share:>7.2f} % {added / 1024:>9.1f} KB "
        f"{added / size * 100:>6.2f} % {verify_ms:>9.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as folder:
        work = Path(folder)
        keys = load_signing_keys(CredentialSettings(home=work / "home"))  # the development chain
        assert keys is not None
        signer = ContentSigner(keys)
        still = work / "still.png"
        Image.new("RGB", (1280, 720), (40, 90, 160)).save(still)
        spec = FinishSpec(
            caption="The boats come home at dawn", trim=(0.0, args.duration - 0.5), fade=0.5, x264_preset=args.preset
        )
        print(f"{args.clips} clips of {args.duration:g} s at 720p, x264 preset {args.preset}, signer: {keys.subject}")
        print(f"{'':<10} {'encode':>10} {'sign':>12} {'of encode':>9} {'added':>12} {'of file':>8} {'verify':>12}")
        signed: list[tuple[str, Path, str]] = []
        encodes, signs, added = [], [], []
        for i in range(args.clips):
            raw = make_source(work / f"raw{i}.mp4", args.duration, seed=i + 1)
            t0 = time.perf_counter()
            render = render_final(raw, spec, work / f"final{i}.mp4", work / "scratch")
            encode_s = time.perf_counter() - t0
            provenance = ClipProvenance(
                storyboard_id="bench",
                shot_id=f"s{i + 1:02d}",
                generator="fal",
                preview=False,
                model=MODEL,
                request_id=f"bench-{i}",
                lineage_uri=f"s3://bucket/clips/bench/s{i + 1:02d}/latest.json",
                still=SourceFile(path=still, sha256=sha256_file(still)),
                raw=SourceFile(path=raw, sha256=sha256_file(raw)),
            )
            plan = clip_plan(provenance, render, title=f"bench: s{i + 1:02d}")
            out = work / f"signed{i}.mp4"
            sign_ms = median_ms(
                lambda plan=plan, i=i, out=out: signer.sign(work / f"final{i}.mp4", out, plan), args.reps
            )
            verify_ms = median_ms(lambda out=out: verify_file(out), args.reps)
            size = (work / f"final{i}.mp4").stat().st_size
            grown = out.stat().st_size - size
            print(row(f"clip {i + 1}", encode_s, sign_ms, grown, size, verify_ms))
            signed.append((provenance.shot_id, out, sha256_file(out)))
            encodes.append(encode_s)
            signs.append(sign_ms)
            added.append(grown)

        t0 = time.perf_counter()
        reel = render_reel(
            [p for _, p, _ in signed], work / "reel.mp4", work / "scratch", chapters=[s for s, _, _ in signed]
        )
        encode_s = time.perf_counter() - t0
        provenance_reel = ReelProvenance(
            storyboard_id="bench",
            lineage_uri="s3://bucket/clips/bench/reel/latest.json",
            clips=[ReelPart(shot_id=s, file=SourceFile(path=p, sha256=h), preview=False) for s, p, h in signed],
        )
        plan = reel_plan(provenance_reel, reel, title="bench reel")
        out = work / "reel-signed.mp4"
        sign_ms = median_ms(lambda: signer.sign(work / "reel.mp4", out, plan), args.reps)
        verify_ms = median_ms(lambda: verify_file(out), args.reps)
        size = (work / "reel.mp4").stat().st_size
        print(row("reel", encode_s, sign_ms, out.stat().st_size - size, size, verify_ms))
        state = verify_file(out).summary()
        clip_share = statistics.median(s / 1000 / e * 100 for s, e in zip(signs, encodes, strict=True))
        print(
            f"\nper clip (median): signing {statistics.median(signs):.1f} ms = {clip_share:.2f} % of its encode, "
            f"+{statistics.median(added) / 1024:.1f} KB; the reel ({reel.duration_s:.1f} s, {len(signed)} signed "
            f"ingredients): {sign_ms:.1f} ms = {sign_ms / 1000 / encode_s * 100:.2f} % of its encode, "
            f"+{(out.stat().st_size - size) / 1024:.1f} KB; reel reads back: {state}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
