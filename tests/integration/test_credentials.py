"""Content credentials (C2PA) in the core: deliverables signed with a chain the tests make, read back trusted
with its root as anchor and untrusted without; what the manifest says for a fal clip, a preview and a reel;
a changed byte, a remux; the finishing cache keyed on the signer; the development chain; bad certificates and
keys refused naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import SecretStr

from shotline.config import Settings
from shotline.credentials.keys import (
    DEV_ROOT_NAME,
    SigningKeys,
    check_configured,
    development_chain,
    load_signing_keys,
    load_trust_anchors,
)
from shotline.credentials.manifest import (
    COMPOSITE,
    COMPOSITE_WITH_TRAINED,
    TRAINED,
    ClipProvenance,
    ReelPart,
    ReelProvenance,
    SourceFile,
    clip_expectations,
    clip_plan,
    reel_expectations,
)
from shotline.credentials.settings import CredentialSettings
from shotline.credentials.signing import ContentSigner
from shotline.credentials.verification import UNTRUSTED, problems, verify_bytes, verify_file
from shotline.errors import ConfigError
from shotline.finishing import cut_reel, finish_clip
from shotline.hashing import sha256_file
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.media.postprocess import FinishResult, FinishSpec, render_final
from shotline.media.probe import decode_check, faststart_ok, probe, top_level_boxes
from shotline.store import WorkStore
from shotline.storyboard import load_storyboard
from testkit.credentials_kit import PEM, Chain, make_chain
from testkit.mediakit import make_clip, packet_md5
from testkit.storyboard_factory import tiny_storyboard, write_image

MODEL = "xai/grok-imagine-video/v1.5/image-to-video"
SPEC = FinishSpec(resolution="480p", caption="Dawn at the harbor", trim=(0.0, 1.5), fade=0.2, x264_preset="veryfast")


def signer_for(chain: Chain, home: Path) -> ContentSigner:
    keys = load_signing_keys(CredentialSettings(home=home, cert=chain.cert, key=chain.key))
    assert keys is not None
    return ContentSigner(keys)


def provenance(folder: Path, raw: Path, *, preview: bool = False, shot: str = "s01") -> ClipProvenance:
    still = write_image(folder / f"{shot}-still.png")
    return ClipProvenance(
        storyboard_id="harbor",
        shot_id=shot,
        generator="preview" if preview else "fal",
        preview=preview,
        model=None if preview else MODEL,
        request_id=None if preview else f"req-{shot}",
        lineage_uri=f"s3://bucket/clips/harbor/{shot}/latest.json",
        still=SourceFile(path=still, sha256=sha256_file(still)),
        raw=SourceFile(path=raw, sha256=sha256_file(raw)),
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("chain"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, FinishResult]:
    """(raw clip, its unsigned deliverable, what the render did)."""
    d = tmp_path_factory.mktemp("render")
    raw = make_clip(d / "raw.mp4", size=(960, 540), duration=2.0)
    result = render_final(raw, SPEC, d / "final.mp4", d / "scratch")
    return raw, d / "final.mp4", result


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, chain: Chain, rendered: tuple[Path, Path, FinishResult]
) -> tuple[Path, ClipProvenance]:
    d = tmp_path_factory.mktemp("signed")
    raw, final, result = rendered
    prov = provenance(d, raw)
    report = signer_for(chain, d).sign(final, d / "signed.mp4", clip_plan(prov, result, title="Harbor: s01"))
    assert 0 < report.bytes_added < 40_000 and report.sign_ms > 0
    assert report.source_type == TRAINED and not report.development
    return d / "signed.mp4", prov


# --- signing and verifying -------------------------------------------------------------------------------


def test_trusted_with_the_tests_root_as_anchor_untrusted_without(signed: tuple[Path, ClipProvenance], chain: Chain):
    path, _ = signed
    untrusted = verify_file(path)
    assert untrusted.state == "untrusted" and untrusted.ok
    assert [f.code for f in untrusted.failures] == [UNTRUSTED]
    assert untrusted.summary() == "valid but untrusted signer"
    anchors = load_trust_anchors(CredentialSettings(trust_anchors=chain.root))
    trusted = verify_file(path, trust_anchors=anchors)
    assert trusted.state == "trusted" and trusted.failures == [] and trusted.summary() == "trusted"
    assert trusted.signer is not None and trusted.signer.common_name == "shotline test signer"
    assert not trusted.signer.development
    other = make_chain(chain.root.parent / "other", name="another signer")
    assert verify_file(path, trust_anchors=other.root.read_text()).state == "untrusted"


def test_a_fal_clip_says_the_model_made_it_from_the_still_then_each_edit(
    signed: tuple[Path, ClipProvenance], rendered: tuple[Path, Path, FinishResult]
):
    path, prov = signed
    found = verify_file(path)
    assert found.digital_source_type == TRAINED
    created, *edits = found.actions
    assert created.action == "c2pa.created" and created.software_agent == MODEL
    assert created.ingredients == [f"harbor/s01 still {prov.still.sha256[:12]}.png"]
    assert [(i.relationship, i.format) for i in found.ingredients] == [
        ("inputTo", "image/png"),
        ("parentOf", "video/mp4"),
    ]
    names = [(a.action, a.description) for a in edits]
    assert names[0] == ("c2pa.edited", "trimmed to 0.000-1.500 s of the generated clip")
    assert edits[0].ingredients == [f"harbor/s01 generated clip {prov.raw.sha256[:12]}.mp4"]
    assert ("c2pa.resized", "scaled 960x540 to 854x480") in names
    assert ("c2pa.edited", "caption overlaid: 'Dawn at the harbor'") in names
    assert any(a == "c2pa.filtered" and "fade" in (d or "") for a, d in names)
    assert any(a == "c2pa.filtered" and "loudness set to -14 LUFS" in (d or "") for a, d in names)
    assert names[-1][0] == "c2pa.transcoded"
    assert found.lineage == {
        "version": 1,
        "kind": "clip",
        "storyboard": "harbor",
        "shot": "s01",
        "take": 1,
        "generator": "fal",
        "preview": False,
        "model": MODEL,
        "fal_request_id": "req-s01",
        "still_sha256": prov.still.sha256,
        "raw_clip_sha256": prov.raw.sha256,
        "lineage_uri": "s3://bucket/clips/harbor/s01/latest.json",
        "lineage_manifest": "<first 12 hex digits of this file's sha256>.json, in the folder of lineage_uri",
    }
    _, _, result = rendered
    expected = clip_expectations(result, storyboard_id="harbor", shot_id="s01", preview=False, request_id="req-s01")
    assert problems(found, expected) == []
    wrong = expected.model_copy(update={"source_type": COMPOSITE, "signer_serial": "1"})
    assert len(problems(found, wrong)) == 2


def test_signing_inserts_one_box_and_leaves_the_streams_alone(
    signed: tuple[Path, ClipProvenance], rendered: tuple[Path, Path, FinishResult]
):
    path, _ = signed
    _, unsigned, _ = rendered
    assert [k for k, _ in top_level_boxes(path)][:3] == ["ftyp", "uuid", "moov"] and faststart_ok(path)
    assert packet_md5(path, "v") == packet_md5(unsigned, "v") and packet_md5(path, "a") == packet_md5(unsigned, "a")
    decode_check(path)
    assert probe(path).tags == probe(unsigned).tags


def test_a_preview_is_never_labelled_as_made_by_a_model(
    tmp_path: Path, chain: Chain, rendered: tuple[Path, Path, FinishResult]
):
    raw, final, result = rendered
    prov = provenance(tmp_path, raw, preview=True)
    signer_for(chain, tmp_path).sign(final, tmp_path / "preview.mp4", clip_plan(prov, result, title="Harbor: s01"))
    found = verify_file(tmp_path / "preview.mp4")
    assert found.ok and found.digital_source_type == COMPOSITE
    assert all(a.digital_source_type != TRAINED for a in found.actions)
    created = found.actions[0]
    assert created.software_agent.startswith("shotline preview generator")
    assert "no generative model" in created.description
    assert found.lineage["preview"] is True and found.lineage["fal_request_id"] is None
    assert "preview animation" in found.ingredients[1].title


def test_one_byte_changed_fails_with_the_hash_mismatch_code(signed: tuple[Path, ClipProvenance], chain: Chain):
    path, _ = signed
    data = bytearray(path.read_bytes())
    mdat = data.find(b"mdat")
    data[mdat + 4000] ^= 0xFF
    anchors = chain.root.read_text()
    found = verify_bytes(bytes(data), trust_anchors=anchors)
    assert found.state == "invalid" and not found.ok
    assert "assertion.bmffHash.mismatch" in found.failing_codes
    assert found.summary().startswith("invalid: ") and "assertion.bmffHash.mismatch" in found.summary()


def test_a_remuxed_copy_reports_no_credentials(signed: tuple[Path, ClipProvenance], tmp_path: Path):
    path, _ = signed
    remuxed = tmp_path / "remuxed.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-i", str(path), "-c", "copy", "-movflags", "+faststart", str(remuxed)],
        check=True,
    )
    found = verify_file(remuxed)
    assert found.state == "absent" and not found.ok and found.summary().startswith("no content credentials")
    assert packet_md5(remuxed, "v") == packet_md5(path, "v")  # same pictures, credentials gone


# --- in finishing: the signed file is what is stored; the cache knows the signer ---------------------------


def test_finish_clip_signs_even_a_stream_copy_and_its_cache_follows_the_signer(tmp_path: Path, chain: Chain):
    store = WorkStore(tmp_path / "home")
    src = make_clip(tmp_path / "src.mp4", size=(640, 360), duration=2.0)
    deliverable = tmp_path / "deliverable.mp4"
    render_final(src, FinishSpec(resolution="480p", fade=0, x264_preset="veryfast"), deliverable, tmp_path / "s")
    spec, sha = FinishSpec(resolution="480p", fade=0), sha256_file(deliverable)
    prov = provenance(tmp_path, deliverable)
    signer = signer_for(chain, tmp_path)

    done = finish_clip(deliverable, sha, spec, store, "s01", signer=signer, provenance=prov)
    assert done.render.mode == "stream copy" and done.credentials is not None
    assert done.sha256 == sha256_file(done.path)  # the stored file is the signed one, named by its hash
    found = verify_file(done.path)
    assert found.ok and [a.action for a in found.actions] == ["c2pa.created", "c2pa.repackaged"]
    assert done.render.steps[-1]["step"] == "content_credentials"

    again = finish_clip(deliverable, sha, spec, store, "s01", signer=signer, provenance=prov)
    assert again.cache_hit and again.sha256 == done.sha256
    unsigned = finish_clip(deliverable, sha, spec, store, "s01")
    assert not unsigned.cache_hit and unsigned.credentials is None and verify_file(unsigned.path).state == "absent"
    other = signer_for(make_chain(tmp_path / "other", name="another signer"), tmp_path)
    resigned = finish_clip(deliverable, sha, spec, store, "s01", signer=other, provenance=prov)
    assert not resigned.cache_hit and resigned.sha256 not in (done.sha256, unsigned.sha256)
    assert verify_file(resigned.path).signer.common_name == "another signer"
    take2 = finish_clip(
        deliverable, sha, spec, store, "s01", signer=signer, provenance=prov.model_copy(update={"take": 2})
    )
    assert not take2.cache_hit and verify_file(take2.path).lineage["take"] == 2


def test_a_reels_ingredients_are_its_signed_clips_and_validate(
    tmp_path: Path, chain: Chain, rendered: tuple[Path, Path, FinishResult]
):
    raw, _, _ = rendered
    board = load_storyboard(tiny_storyboard(tmp_path / "boards", "harbor", n_shots=2))
    store, signer = WorkStore(tmp_path / "home"), signer_for(chain, tmp_path)
    spec = FinishSpec(resolution="480p", fade=0.2, x264_preset="veryfast", trim=(0.0, 2.0))
    finals = []
    for shot, preview in zip(board.shots, (False, True), strict=True):
        prov = provenance(tmp_path, raw, preview=preview, shot=shot.id)
        finals.append(finish_clip(raw, prov.raw.sha256, spec, store, shot.id, signer=signer, provenance=prov))
    clips = [(s.id, f.path, f.sha256) for s, f in zip(board.shots, finals, strict=True)]
    reel_prov = ReelProvenance(
        storyboard_id=board.id,
        lineage_uri="s3://bucket/clips/harbor/reel/latest.json",
        clips=[
            ReelPart(shot_id=s, file=SourceFile(path=p, sha256=h), preview=preview)
            for (s, p, h), preview in zip(clips, (False, True), strict=True)
        ],
    )
    reel = cut_reel(board, clips, store, signer=signer, provenance=reel_prov)
    assert reel.credentials is not None and reel.credentials.source_type == COMPOSITE_WITH_TRAINED

    found = verify_file(reel.path, trust_anchors=chain.root.read_text())
    assert found.state == "trusted" and found.manifests == 3  # the reel's and each clip's own
    assert [i.relationship for i in found.ingredients] == ["componentOf", "componentOf"]
    assert all(i.signed and i.valid for i in found.ingredients)
    placed = [a for a in found.actions if a.action == "c2pa.placed"]
    assert [a.ingredients for a in placed] == [[f"harbor/{s}/{h[:12]}.mp4"] for s, _, h in clips]
    expected = reel_expectations(reel.render, storyboard_id=board.id, previews=[False, True])
    assert problems(found, expected) == []
    assert [c["shot"] for c in found.lineage["clips"]] == ["s01", "s02"]
    assert [k for k, _ in top_level_boxes(reel.path)][:3] == ["ftyp", "uuid", "moov"]
    assert [c.title for c in probe(reel.path).chapters] == ["s01", "s02"]  # the chapter track survives signing

    previews = reel_prov.model_copy(update={"clips": [c.model_copy(update={"preview": True}) for c in reel_prov.clips]})
    all_previews = cut_reel(board, clips, store, signer=signer, provenance=previews)
    assert verify_file(all_previews.path).digital_source_type == COMPOSITE


# --- keys: the development chain, the environment, bad input ----------------------------------------------


def test_the_development_chain_is_made_once_and_labelled(tmp_path: Path, rendered: tuple[Path, Path, FinishResult]):
    settings = Settings.from_env({"SHOTLINE_HOME": str(tmp_path / "home")})
    keys = load_signing_keys(settings.credentials)
    assert keys is not None and keys.development and keys.root_path is not None
    assert keys.issuer == DEV_ROOT_NAME and "DEVELOPMENT" in keys.describe()
    assert load_signing_keys(settings.credentials).fingerprint == keys.fingerprint  # made once
    assert (keys.root_path.parent / "key.pem").stat().st_mode & 0o077 == 0
    raw, final, result = rendered
    prov = provenance(tmp_path, raw)
    report = ContentSigner(keys).sign(final, tmp_path / "dev.mp4", clip_plan(prov, result, title="t"))
    assert report.development
    found = verify_file(tmp_path / "dev.mp4")
    assert found.state == "untrusted" and found.signer.development
    assert "development root" in found.summary() and DEV_ROOT_NAME in found.signer.issuer
    trusted = Settings.from_env(
        {"SHOTLINE_HOME": str(tmp_path / "home"), "SHOTLINE_C2PA_TRUST_ANCHORS": str(keys.root_path)}
    )
    assert verify_file(tmp_path / "dev.mp4", trust_anchors=load_trust_anchors(trusted.credentials)).state == "trusted"


def test_processes_racing_to_make_the_development_chain_share_one(tmp_path: Path):
    home = tmp_path / "home"
    code = (
        "import hashlib, sys; from pathlib import Path; from shotline.credentials.keys import development_chain; "
        "print(hashlib.sha256(development_chain(Path(sys.argv[1])).chain.read_bytes()).hexdigest())"
    )
    runs = [subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE) for _ in range(4)]
    prints = {p.communicate()[0].decode().strip() for p in runs}
    assert all(p.returncode == 0 for p in runs) and len(prints) == 1
    assert sorted(p.name for p in (home / "credentials").iterdir()) == ["development"]  # no staging folder left
    assert hashlib_of(development_chain(home).chain) == prints.pop()


def hashlib_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_signing_off_and_the_switch(tmp_path: Path):
    off = Settings.from_env({"SHOTLINE_HOME": str(tmp_path), "SHOTLINE_C2PA": "off"})
    assert load_signing_keys(off.credentials) is None and not (tmp_path / "credentials").exists()
    with pytest.raises(ValueError, match="SHOTLINE_C2PA must be 'on' or 'off'"):
        Settings.from_env({"SHOTLINE_C2PA": "maybe"})


def test_the_key_may_come_from_the_environment_and_never_shows(tmp_path: Path, chain: Chain):
    env = {
        "SHOTLINE_HOME": str(tmp_path),
        "SHOTLINE_C2PA_CERT": str(chain.cert),
        "SHOTLINE_C2PA_KEY_PEM": chain.key_pem,
    }
    settings = Settings.from_env(env)
    keys = load_signing_keys(settings.credentials)
    assert isinstance(keys, SigningKeys) and keys.subject == "shotline test signer"
    secret = chain.key_pem.splitlines()[1]
    for shown in (repr(settings), str(settings), repr(keys), str(keys), repr(ContentSigner(keys)), keys.describe()):
        assert secret not in shown
    mismatch = make_chain(tmp_path / "mismatch", other_key=True)
    wrong = Settings.from_env({"SHOTLINE_C2PA_CERT": str(chain.cert), "SHOTLINE_C2PA_KEY_PEM": mismatch.key_pem})
    with pytest.raises(ConfigError) as caught:
        load_signing_keys(wrong.credentials)
    assert caught.value.field == "SHOTLINE_C2PA_KEY_PEM" and secret not in str(caught.value)


def test_a_host_may_get_the_whole_identity_from_secrets_in_its_environment(tmp_path: Path, chain: Chain):
    """What a shared-nothing pod does: chain and key as text in two variables (a k8s Secret), no files."""
    env = {
        "SHOTLINE_HOME": str(tmp_path / "pod"),
        "SHOTLINE_C2PA_CERT": chain.cert.read_text(),
        "SHOTLINE_C2PA_KEY_PEM": chain.key_pem,
    }
    keys = load_signing_keys(Settings.from_env(env).credentials)
    assert isinstance(keys, SigningKeys) and keys.subject == "shotline test signer" and not keys.development
    assert not (tmp_path / "pod").exists()  # no development chain was made on this host


BAD_CHAINS = [
    ({"expired": True}, "SHOTLINE_C2PA_CERT", "expired on"),
    ({"eku": ExtendedKeyUsageOID.SERVER_AUTH}, "SHOTLINE_C2PA_CERT", "lacks emailProtection"),
    ({"eku": None}, "SHOTLINE_C2PA_CERT", "lacks emailProtection"),
    ({"digital_signature": False}, "SHOTLINE_C2PA_CERT", "lacks digitalSignature"),
    ({"aki": False}, "SHOTLINE_C2PA_CERT", "no AuthorityKeyIdentifier"),
    ({"self_signed": True}, "SHOTLINE_C2PA_CERT", "self-signed"),
    ({"other_key": True}, "SHOTLINE_C2PA_KEY", "does not match the signing certificate"),
]


@pytest.mark.parametrize(("broken", "variable", "reason"), BAD_CHAINS, ids=[r for _, _, r in BAD_CHAINS])
def test_a_bad_chain_is_refused_naming_the_variable_and_why(
    tmp_path: Path, broken: dict, variable: str, reason: str
) -> None:
    chain = make_chain(tmp_path, **broken)
    with pytest.raises(ConfigError, match=reason) as caught:
        load_signing_keys(CredentialSettings(home=tmp_path, cert=chain.cert, key=chain.key))
    assert caught.value.field == variable and variable in str(caught.value)


def test_missing_unreadable_and_wrong_files_are_refused(tmp_path: Path, chain: Chain) -> None:
    def refused(variable: str, reason: str, **settings: object) -> None:
        with pytest.raises(ConfigError, match=reason) as caught:
            check_configured(CredentialSettings(home=tmp_path, **settings))
        assert caught.value.field == variable

    refused("SHOTLINE_C2PA_CERT", "does not exist", cert=tmp_path / "absent.pem", key=chain.key)
    refused("SHOTLINE_C2PA_KEY", "cannot be read", cert=chain.cert, key=tmp_path)  # a folder
    (tmp_path / "text.pem").write_text("not a certificate\n")
    refused("SHOTLINE_C2PA_CERT", "holds no PEM certificate", cert=tmp_path / "text.pem", key=chain.key)
    refused("SHOTLINE_C2PA_KEY", "holds no PEM private key", cert=chain.cert, key=chain.cert)
    encrypted = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key(chain.key.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    )
    refused("SHOTLINE_C2PA_KEY", "the key is encrypted", cert=chain.cert, key=encrypted)
    refused("SHOTLINE_C2PA_KEY_PEM", "both SHOTLINE_C2PA_KEY and SHOTLINE_C2PA_KEY_PEM", cert=chain.cert,
            key=chain.key, key_pem=SecretStr(chain.key_pem))  # fmt: skip
    refused("SHOTLINE_C2PA_KEY", "not set but SHOTLINE_C2PA_CERT is", cert=chain.cert)
    refused("SHOTLINE_C2PA_CERT", "not set but SHOTLINE_C2PA_KEY is", key=chain.key)
    refused("SHOTLINE_C2PA_TSA_URL", "not an http", tsa_url="ftp://tsa.example", cert=chain.cert, key=chain.key)
    refused("SHOTLINE_C2PA_TRUST_ANCHORS", "holds no PEM certificate", trust_anchors=tmp_path / "text.pem")
    refused("SHOTLINE_C2PA_TRUST_ANCHORS", "does not exist", trust_anchors=tmp_path / "absent.pem")


def test_a_bad_chain_stops_start_up_before_anything_runs(tmp_path: Path, chain: Chain) -> None:
    from pipelines.definitions import build_definitions
    from shotline.preflight import preflight

    expired = make_chain(tmp_path / "expired", expired=True)
    (tmp_path / "boards").mkdir()
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(tmp_path / "boards"),
        **expired.env(),
    }
    with pytest.raises(ConfigError, match=r"SHOTLINE_C2PA_CERT.*expired") as caught:
        build_definitions(Settings.from_env(env))
    assert caught.value.field == "SHOTLINE_C2PA_CERT"
    with pytest.raises(ConfigError, match=r"SHOTLINE_C2PA_CERT.*expired"):
        preflight(Settings.from_env(env))
    checked = preflight(Settings.from_env({**env, **chain.env()}))
    assert any(line.startswith("content credentials: signing with shotline test signer") for line in checked)
    dev = preflight(Settings.from_env({k: v for k, v in env.items() if not k.startswith("SHOTLINE_C2PA")}))
    assert any("DEVELOPMENT chain" in line for line in dev)


def test_verification_results_are_plain_json(signed: tuple[Path, ClipProvenance]) -> None:
    found = verify_file(signed[0])
    assert json.loads(found.model_dump_json())["state"] == "untrusted"
