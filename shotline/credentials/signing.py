"""Embedding a signed C2PA manifest into an mp4: the last write to a deliverable before it is hashed and stored.

The SDK inserts one `uuid` box after `ftyp` and fixes the chunk offsets; it never reorders boxes, so a
faststart file stays faststart (checked here). Anything that rewrites the file afterwards (a remux, even
`-c copy`) strips the credentials or breaks their hash binding, so nothing after this step touches the file.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import c2pa
from PIL import Image

from shotline.credentials.keys import SigningKeys
from shotline.credentials.manifest import ManifestPlan, shotline_version
from shotline.credentials.report import SigningReport
from shotline.errors import ConfigError, MediaError
from shotline.fsutil import atomic_path
from shotline.media.probe import faststart_ok

# Thumbnails of image ingredients cost ~35-40 KB each and say nothing the ingredient's hash does not.
_BUILD_SETTINGS: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
# Bump when what is signed into a file changes for the same inputs: render caches keyed on it then miss.
SIGNING_VERSION = "1"


class ContentSigner:
    """Signs deliverables with one chain. Holds the key in memory only; its repr shows who signs, not the key."""

    def __init__(self, keys: SigningKeys) -> None:
        self.keys = keys

    def __repr__(self) -> str:
        return f"ContentSigner({self.keys.subject!r}, development={self.keys.development})"

    def identity(self) -> dict[str, str | None]:
        """What a signed file depends on besides its content (part of render cache keys)."""
        return {**self.keys.identity(), "signing": SIGNING_VERSION}

    def _signer(self) -> c2pa.Signer:
        info = c2pa.C2paSignerInfo(
            self.keys.alg.encode(),
            self.keys.chain_pem.encode(),
            self.keys.key_pem.get_secret_value().encode(),
            self.keys.tsa_url.encode() if self.keys.tsa_url else None,
        )
        return c2pa.Signer.from_info(info)

    def sign(self, src: Path, out: Path, plan: ManifestPlan) -> SigningReport:
        """Write `src` with `plan` signed into it to `out` (atomically)."""
        src, out = Path(src), Path(out)
        started = time.perf_counter()
        try:
            with (
                self._signer() as signer,
                c2pa.Context.from_dict(_BUILD_SETTINGS) as context,
                c2pa.Builder(plan.definition(), context) as builder,
            ):
                for ingredient in plan.ingredients:
                    with open(ingredient.file.path, "rb") as f:
                        builder.add_ingredient(ingredient.definition(), ingredient.format, f)
                # The SDK reads back what it wrote: the destination is opened for reading too.
                with open(src, "rb") as source, atomic_path(out) as part, open(part, "w+b") as dest:
                    builder.sign(signer, "video/mp4", source, dest)
        except c2pa.C2paError as exc:
            raise MediaError(f"{src.name}: signing its content credentials failed: {exc}") from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        if faststart_ok(src) and not faststart_ok(out):
            out.unlink(missing_ok=True)
            raise MediaError(f"{src.name}: the signed file lost its fast start (moov after mdat)")
        return SigningReport(
            signer=self.keys.subject,
            issuer=self.keys.issuer,
            serial=self.keys.serial,
            development=self.keys.development,
            timestamped=self.keys.tsa_url is not None,
            source_type=plan.source_type,
            actions=plan.action_names,
            ingredients=[i.title for i in plan.ingredients],
            bytes_added=out.stat().st_size - src.stat().st_size,
            sign_ms=round(elapsed_ms, 2),
        )

    def self_test(self) -> str:
        """Sign a tiny image and read it back: what the SDK thinks of the chain (and the TSA, if one is set),
        before anything is paid for. ConfigError naming the variable when it refuses."""
        variable = "SHOTLINE_HOME" if self.keys.development else "SHOTLINE_C2PA_CERT"
        source, signed = io.BytesIO(), io.BytesIO()
        Image.new("RGB", (16, 16), (40, 90, 160)).save(source, format="PNG")
        source.seek(0)
        created = {"digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"}
        definition = {
            "claim_generator_info": [{"name": "shotline", "version": shotline_version()}],
            "title": "shotline signing self-test",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", **created}]}}],
        }
        try:
            with (
                self._signer() as signer,
                c2pa.Context.from_dict(_BUILD_SETTINGS) as context,
                c2pa.Builder(definition, context) as builder,
            ):
                builder.sign(signer, "image/png", source, signed)
            signed.seek(0)
            with c2pa.Reader("image/png", signed) as reader:
                state = reader.get_validation_state()
        except c2pa.C2paError as exc:
            refused = f"{variable}: the C2PA SDK refuses to sign with this chain: {exc}"
            raise ConfigError(refused, field=variable) from None
        if state not in ("Valid", "Trusted"):
            raise ConfigError(f"{variable}: a test signature with this chain reads back {state}", field=variable)
        return str(state)
