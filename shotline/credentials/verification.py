"""Reading a deliverable's content credentials back: who signed it, what it says made it, and whether it holds.

States: `trusted` (valid, signer chains to a trusted root: the SDK's list or SHOTLINE_C2PA_TRUST_ANCHORS),
`untrusted` (valid, but the signer is not trusted, e.g. the development root), `invalid` (with the failing
codes, e.g. `assertion.bmffHash.mismatch` for a changed byte) and `absent` (no manifest: never signed, or
rewritten since, as a remux does).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import IO, Any, Literal

import c2pa
from pydantic import BaseModel

from shotline.credentials.keys import DEV_ROOT_NAME
from shotline.credentials.manifest import LINEAGE_LABEL, Expectations
from shotline.errors import MediaError
from shotline.media.probe import faststart_ok

State = Literal["trusted", "untrusted", "invalid", "absent"]
UNTRUSTED = "signingCredential.untrusted"
_STATES: dict[str, State] = {"Trusted": "trusted", "Valid": "untrusted", "Invalid": "invalid"}


class Code(BaseModel):
    code: str
    explanation: str | None = None


class SignerFacts(BaseModel):
    common_name: str | None
    issuer: str | None
    serial: str | None
    alg: str | None
    time: str | None  # from a timestamp authority, when one signed
    development: bool  # issued by shotline's development root


class ActionFacts(BaseModel):
    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None
    description: str | None = None
    ingredients: list[str] = []  # titles of the ingredients it names


class IngredientFacts(BaseModel):
    title: str
    relationship: str
    format: str | None
    signed: bool  # it carries a manifest of its own
    valid: bool | None  # its manifest re-validated now (None: it has none)
    failures: list[Code] = []


class Verification(BaseModel):
    """What a file's content credentials say, and whether they hold."""

    state: State
    detail: str | None = None  # why there is no manifest, when there is none
    title: str | None = None
    signer: SignerFacts | None = None
    digital_source_type: str | None = None
    actions: list[ActionFacts] = []
    ingredients: list[IngredientFacts] = []
    lineage: dict[str, Any] | None = None  # shotline's own assertion
    failures: list[Code] = []  # of the active manifest, the untrusted signer included
    manifests: int = 0  # in the store: the active one plus those of signed ingredients
    faststart: bool | None = None  # moov before mdat (mp4 files)

    @property
    def ok(self) -> bool:
        """Present and intact (whether or not the signer is trusted)."""
        return self.state in ("trusted", "untrusted")

    @property
    def failing_codes(self) -> list[str]:
        """What breaks the credentials (an untrusted signer alone does not: that is `untrusted`)."""
        return [f.code for f in self.failures if f.code != UNTRUSTED]

    def summary(self) -> str:
        if self.state == "trusted":
            return "trusted"
        if self.state == "untrusted":
            dev = " (shotline's development root)" if self.signer and self.signer.development else ""
            return f"valid but untrusted signer{dev}"
        if self.state == "invalid":
            return f"invalid: {', '.join(self.failing_codes) or 'no failure code given'}"
        return f"no content credentials ({self.detail})" if self.detail else "no content credentials"


def reader_settings(trust_anchors: str | None) -> dict[str, Any]:
    # user_anchors adds to the SDK's list (trust_anchors would replace it, and "" fails to parse)
    return {"trust": {"user_anchors": trust_anchors}} if trust_anchors else {}


def verify_stream(stream: IO[bytes], *, trust_anchors: str | None = None, mime: str = "video/mp4") -> Verification:
    try:
        with (
            c2pa.Context.from_dict(reader_settings(trust_anchors)) as context,
            c2pa.Reader(mime, stream, context=context) as reader,
        ):
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound as exc:
        return Verification(state="absent", detail=_sdk_message(exc))
    except c2pa.C2paError as exc:
        unreadable = Code(code="asset.unreadable", explanation=_sdk_message(exc))
        return Verification(state="invalid", detail=_sdk_message(exc), failures=[unreadable])
    return _facts(store)


def verify_file(path: Path, *, trust_anchors: str | None = None) -> Verification:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            result = verify_stream(f, trust_anchors=trust_anchors)
        return result.model_copy(update={"faststart": _faststart(path)})
    except OSError as exc:
        raise MediaError(f"{path.name} cannot be read: {exc.strerror or exc}") from None


def verify_bytes(data: bytes, *, trust_anchors: str | None = None) -> Verification:
    """An mp4 held in memory (e.g. read back from the publish destination)."""
    with tempfile.TemporaryDirectory(prefix="shotline-verify-") as folder:
        path = Path(folder) / "object.mp4"
        path.write_bytes(data)
        return verify_file(path, trust_anchors=trust_anchors)


def _faststart(path: Path) -> bool | None:
    try:
        return faststart_ok(path)
    except MediaError:
        return None


def _sdk_message(exc: Exception) -> str:
    return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)


def _facts(store: dict[str, Any]) -> Verification:
    manifests = store.get("manifests", {})
    active = manifests.get(store.get("active_manifest") or "", {})
    results = store.get("validation_results") or {}
    failures = [_code(f) for f in results.get("activeManifest", {}).get("failure", [])]
    state = _STATES.get(str(store.get("validation_state")), "invalid")
    ingredients_by_label = {i.get("label"): i for i in active.get("ingredients", [])}
    deltas = {d.get("ingredientAssertionURI", "").rsplit("/", 1)[-1]: d for d in results.get("ingredientDeltas", [])}
    ingredients = [_ingredient(i, deltas.get(str(i.get("label")))) for i in active.get("ingredients", [])]
    actions, lineage = [], None
    for assertion in active.get("assertions", []):
        label = str(assertion.get("label", ""))
        if label.startswith("c2pa.actions"):
            actions += [_action(a, ingredients_by_label) for a in assertion.get("data", {}).get("actions", [])]
        elif label == LINEAGE_LABEL:
            lineage = assertion.get("data")
    info = active.get("signature_info") or {}
    issuer = info.get("issuer")
    return Verification(
        state=state,
        title=active.get("title"),
        signer=SignerFacts(
            common_name=info.get("common_name"),
            issuer=issuer,
            serial=str(info["cert_serial_number"]) if info.get("cert_serial_number") is not None else None,
            alg=info.get("alg"),
            time=info.get("time"),
            development=bool(issuer and DEV_ROOT_NAME in str(issuer)),
        ),
        digital_source_type=next((a.digital_source_type for a in actions if a.action == "c2pa.created"), None),
        actions=actions,
        ingredients=ingredients,
        lineage=lineage,
        failures=failures,
        manifests=len(manifests),
    )


def _code(entry: dict[str, Any]) -> Code:
    return Code(code=str(entry.get("code")), explanation=entry.get("explanation"))


def _action(entry: dict[str, Any], ingredients: dict[Any, dict[str, Any]]) -> ActionFacts:
    params = entry.get("parameters") or {}
    named = []
    for ref in params.get("ingredients", []):
        label = str(ref.get("url", "")).rsplit("/", 1)[-1]
        named.append(str(ingredients.get(label, {}).get("title", label)))
    agent = entry.get("softwareAgent")
    if isinstance(agent, dict):
        agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
    return ActionFacts(
        action=str(entry.get("action")),
        digital_source_type=entry.get("digitalSourceType"),
        software_agent=agent,
        description=params.get("description") or entry.get("description"),
        ingredients=named,
    )


def _ingredient(entry: dict[str, Any], delta: dict[str, Any] | None) -> IngredientFacts:
    signed = bool(entry.get("active_manifest"))
    failures = [_code(f) for f in (delta or {}).get("validationDeltas", {}).get("failure", [])]
    hard = [f for f in failures if f.code != UNTRUSTED]
    return IngredientFacts(
        title=str(entry.get("title")),
        relationship=str(entry.get("relationship")),
        format=entry.get("format"),
        signed=signed,
        valid=(not hard) if signed else None,
        failures=failures,
    )


def problems(found: Verification, expected: Expectations) -> list[str]:
    """How a file's credentials differ from what its records say they must be (empty: as expected)."""
    if not found.ok:
        return [found.summary()]
    out = []
    if found.digital_source_type != expected.source_type:
        out.append(f"digital source type {_short(found.digital_source_type)}, expected {_short(expected.source_type)}")
    names = [a.action for a in found.actions]
    if names != expected.actions:
        out.append(f"actions {names}, expected {expected.actions}")
    relationships = [i.relationship for i in found.ingredients]
    if relationships != expected.ingredients:
        out.append(f"ingredients {relationships}, expected {expected.ingredients}")
    broken = [i.title for i in found.ingredients if i.valid is False]
    if broken:
        out.append(f"ingredients whose own credentials fail: {', '.join(broken)}")
    lineage = found.lineage or {}
    wrong = {k: lineage.get(k) for k, v in expected.lineage.items() if lineage.get(k) != v}
    if wrong:
        out.append(f"shotline assertion {LINEAGE_LABEL} has {wrong}, expected {expected.lineage}")
    if expected.signer_serial is not None and (found.signer is None or found.signer.serial != expected.signer_serial):
        out.append(
            f"signed by certificate serial {found.signer.serial if found.signer else None}, not the configured "
            f"signer's {expected.signer_serial}"
        )
    if found.faststart is False:
        out.append("moov is after mdat: the signed file lost its fast start")
    return out


def _short(source_type: str | None) -> str:
    return str(source_type).rsplit("/", 1)[-1]
