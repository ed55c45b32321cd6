"""Content credentials through Dagster's own jobs: every published clip and reel is signed (the development
chain when no key is set), the blocking checks read the files back (and fail on a rewritten one), a clip
published to the S3 test server verifies as uploaded, republishing keeps the signature, and `shotline verify`
and `shotline lineage` read it from the file alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from shotline.cli import main
from shotline.config import Settings
from shotline.credentials.keys import DEV_FOLDER
from shotline.credentials.manifest import COMPOSITE, COMPOSITE_WITH_TRAINED, TRAINED
from shotline.credentials.verification import verify_bytes, verify_file
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.store import WorkStore
from shotline.storyboard import Storyboard, load_storyboard
from testkit.storyboard_factory import tiny_storyboard

CHECKED = ("final_clip", "published_clip", "storyboard_reel")


def credential_checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.asset_key.to_user_string(): e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "content_credentials"
    }


def run_all(
    defs: dg.Definitions, instance: dg.DagsterInstance, board: Storyboard
) -> dict[str, dg.AssetCheckEvaluation]:
    """clip_job for every shot, then reel_job; every content-credentials check evaluation, by asset/partition."""
    keys = [s.partition_key for s in board.shots]
    instance.add_dynamic_partitions("shots", [k for k in keys if not instance.has_dynamic_partition("shots", k)])
    if not instance.has_dynamic_partition("storyboards", board.id):
        instance.add_dynamic_partitions("storyboards", [board.id])
    found = {}
    for key in keys:
        result = defs.resolve_job_def("clip_job").execute_in_process(partition_key=key, instance=instance)
        assert result.success
        found |= {f"{asset}/{key}": e for asset, e in credential_checks(result).items()}
    result = defs.resolve_job_def("reel_job").execute_in_process(partition_key=board.id, instance=instance)
    assert result.success
    found |= {f"{asset}/{board.id}": e for asset, e in credential_checks(result).items()}
    return found


def metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict[str, object]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


@pytest.fixture
def preview_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FAL_KEY", raising=False)
    for var in ("SHOTLINE_C2PA", "SHOTLINE_C2PA_CERT", "SHOTLINE_C2PA_KEY", "SHOTLINE_C2PA_TRUST_ANCHORS"):
        monkeypatch.delenv(var, raising=False)
    board = load_storyboard(tiny_storyboard(tmp_path / "boards", n_shots=2, duration=2))
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(tmp_path / "boards"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
        "SHOTLINE_GENERATOR": "preview",
    }
    for name, value in env.items():  # the CLI reads the same environment
        monkeypatch.setenv(name, value)
    with dg.instance_for_test() as instance:
        yield env, instance, board


def test_previews_and_their_reel_are_signed_checked_and_verifiable_from_the_file_alone(
    preview_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env, instance, board = preview_world
    defs = build_definitions(Settings.from_env(env))
    checks = run_all(defs, instance, board)
    assert sorted(checks) == sorted(
        [f"{a}/{s.partition_key}" for s in board.shots for a in CHECKED[:2]] + [f"storyboard_reel/{board.id}"]
    )
    assert all(e.passed for e in checks.values()), {k: e.description for k, e in checks.items() if not e.passed}
    final_md = metadata(instance, "final_clip", "tiny__s01")
    assert "DEVELOPMENT root" in str(final_md["content_credentials"]) and final_md["c2pa_source_type"] == "composite"
    assert int(final_md["c2pa_bytes_added"]) > 0  # type: ignore[call-overload]
    assert (Path(env["SHOTLINE_HOME"]) / DEV_FOLDER / "root.pem").is_file()

    published = tmp_path / "published" / "tiny" / "s01"
    video = published / json.loads((published / "latest.json").read_text())["files"]["video"]
    found = verify_file(video)
    assert found.state == "untrusted" and found.signer.development and found.digital_source_type == COMPOSITE
    assert all(a.digital_source_type != TRAINED for a in found.actions)
    reel_dir = tmp_path / "published" / "tiny" / "reel"
    reel = verify_file(reel_dir / json.loads((reel_dir / "latest.json").read_text())["files"]["video"])
    assert reel.ok and reel.digital_source_type == COMPOSITE and reel.manifests == 3
    assert [i.relationship for i in reel.ingredients] == ["componentOf", "componentOf"]

    # shotline verify: the exit status says what was found
    assert main(["verify", "tiny/s01"]) == 0
    out = capsys.readouterr().out
    assert "valid but untrusted signer" in out and "DEVELOPMENT root" in out and "inputTo" in out
    assert main(["verify", "--require-trusted", "tiny/s01"]) == 1
    monkeypatch.setenv("SHOTLINE_C2PA_TRUST_ANCHORS", str(Path(env["SHOTLINE_HOME"]) / DEV_FOLDER / "root.pem"))
    assert main(["verify", "--require-trusted", str(video)]) == 0
    capsys.readouterr()
    assert main(["verify", "--json", "tiny/reel"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "trusted" and shown["digital_source_type"] == COMPOSITE
    flipped = tmp_path / "flipped.mp4"
    data = bytearray(video.read_bytes())
    data[data.find(b"mdat") + 3000] ^= 0xFF
    flipped.write_bytes(bytes(data))
    assert main(["verify", str(flipped)]) == 1
    assert "assertion.bmffHash.mismatch" in capsys.readouterr().out
    remuxed = tmp_path / "remuxed.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-c", "copy", str(remuxed)], check=True)
    assert main(["verify", str(remuxed)]) == 2
    assert "no content credentials" in capsys.readouterr().out
    assert main(["verify", "tiny/nothing-here"]) == 3
    monkeypatch.setenv("SHOTLINE_C2PA_TRUST_ANCHORS", str(tmp_path / "absent.pem"))
    assert main(["verify", str(video)]) == 3
    assert "SHOTLINE_C2PA_TRUST_ANCHORS" in capsys.readouterr().err
    monkeypatch.delenv("SHOTLINE_C2PA_TRUST_ANCHORS")

    # shotline lineage reads the signed manifest first: a copy far from the published tree leads back
    copy = tmp_path / "elsewhere" / "clip.mp4"
    copy.parent.mkdir()
    copy.write_bytes(video.read_bytes())
    capsys.readouterr()
    assert main(["lineage", "--json", str(copy)]) == 0
    traced = json.loads(capsys.readouterr().out)
    assert traced["found_via"] == "content credentials" and traced["file"]["matches_manifest"] is True
    assert traced["file"]["credentials"]["state"] == "untrusted"

    # Republishing the same clip keeps its signed bytes and its signature.
    before = video.read_bytes()
    again = defs.resolve_job_def("clip_job").execute_in_process(partition_key="tiny__s01", instance=instance)
    assert again.success and all(e.passed for e in credential_checks(again).values())
    assert video.read_bytes() == before and verify_file(video).ok


def test_a_rewritten_deliverable_fails_the_blocking_check(preview_world) -> None:
    env, instance, board = preview_world
    defs = build_definitions(Settings.from_env(env))
    key = board.shots[0].partition_key
    instance.add_dynamic_partitions("shots", [key])
    clip_job = defs.resolve_job_def("clip_job")
    assert clip_job.execute_in_process(partition_key=key, instance=instance).success
    sha = metadata(instance, "final_clip", key)["sha256"]
    stored = WorkStore(Path(env["SHOTLINE_HOME"])).get(str(sha), ".mp4")
    assert stored is not None
    remuxed = stored.path.with_name("remuxed.mp4")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(stored.path), "-c", "copy", str(remuxed)], check=True)
    stored.path.chmod(0o644)
    remuxed.replace(stored.path)  # a step that rewrote the signed file
    check = dg.AssetCheckKey(dg.AssetKey("final_clip"), "content_credentials")
    only = clip_job.get_subset(asset_selection=set(), asset_check_selection={check})
    run = only.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
    (evaluation,) = run.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.description.startswith("no content credentials")


def test_signing_off_publishes_without_credentials(preview_world, monkeypatch: pytest.MonkeyPatch) -> None:
    env, instance, board = preview_world
    env = {**env, "SHOTLINE_C2PA": "off"}
    checks = run_all(build_definitions(Settings.from_env(env)), instance, board)
    assert all(e.passed and "SHOTLINE_C2PA=off" in (e.description or "") for e in checks.values())
    assert "off" in str(metadata(instance, "final_clip", "tiny__s01")["content_credentials"])
    assert main(["verify", "tiny/s01"]) == 2
    assert not (Path(env["SHOTLINE_HOME"]) / DEV_FOLDER).exists()


def test_fal_clips_published_to_s3_verify_as_uploaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fal, s3_env, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_fal.queue_polls, fake_fal.progress_polls = 0, 1
    monkeypatch.setenv("FAL_KEY", fake_fal.key)
    board = load_storyboard(tiny_storyboard(tmp_path / "boards", n_shots=2, duration=2))
    env = {
        "FAL_KEY": fake_fal.key,
        "SHOTLINE_FAL_QUEUE_URL": fake_fal.url,
        "SHOTLINE_FAL_REST_URL": fake_fal.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake_fal.cdn_url,
        "SHOTLINE_FAL_API_URL": fake_fal.api_url,
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(tmp_path / "boards"),
        "SHOTLINE_PUBLISH_URI": s3_env.uri("clips"),
    }
    with dg.instance_for_test() as instance:
        checks = run_all(build_definitions(Settings.from_env(env)), instance, board)
        assert all(e.passed for e in checks.values()), {k: e.description for k, e in checks.items() if not e.passed}
        for shot in board.shots:
            raw = metadata(instance, "raw_clip", shot.partition_key)
            uri = str(metadata(instance, "published_clip", shot.partition_key)["uri"])
            body = s3_env.client.get_object(Bucket=s3_env.bucket, Key=uri.split("/", 3)[3])["Body"].read()
            found = verify_bytes(body)
            assert found.ok and found.digital_source_type == TRAINED
            assert found.actions[0].software_agent == "xai/grok-imagine-video/v1.5/image-to-video"
            assert found.lineage["fal_request_id"] == raw["fal_request_id"] and found.lineage["take"] == 1
            assert found.lineage["lineage_uri"] == s3_env.uri(f"clips/tiny/{shot.id}/latest.json")
        reel_uri = str(metadata(instance, "storyboard_reel", board.id)["uri"])
        reel = verify_bytes(
            s3_env.client.get_object(Bucket=s3_env.bucket, Key=reel_uri.split("/", 3)[3])["Body"].read()
        )
        assert reel.ok and reel.digital_source_type == COMPOSITE_WITH_TRAINED
        assert [a.action for a in reel.actions].count("c2pa.placed") == 2 and all(i.valid for i in reel.ingredients)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert main(["verify", uri]) == 0 and main(["verify", "tiny/reel"]) == 0
        assert "trainedAlgorithmicMedia" in capsys.readouterr().out


def test_a_signing_key_from_the_environment_never_leaves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from assets.resources import CredentialsResource
    from pipelines.definitions import build_resources
    from testkit.credentials_kit import make_chain

    monkeypatch.delenv("FAL_KEY", raising=False)
    chain = make_chain(tmp_path / "keys")
    secret_lines = [line for line in chain.key_pem.splitlines() if not line.startswith("-----")]
    chain.key.unlink()  # the key exists only in the environment
    monkeypatch.setenv("SHOTLINE_C2PA_KEY_PEM", chain.key_pem)
    board = load_storyboard(tiny_storyboard(tmp_path / "boards", n_shots=2, duration=2))
    env = {
        "SHOTLINE_HOME": str(tmp_path / "home"),
        "SHOTLINE_STORYBOARDS": str(tmp_path / "boards"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
        "SHOTLINE_GENERATOR": "preview",
        "SHOTLINE_C2PA_CERT": str(chain.cert),
        "SHOTLINE_C2PA_KEY_PEM": chain.key_pem,
    }

    def leaks(text: str | bytes) -> bool:
        data = text.encode() if isinstance(text, str) else text
        return any(line.encode() in data for line in secret_lines)

    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        checks = run_all(build_definitions(Settings.from_env(env)), instance, board)
        assert all(e.passed for e in checks.values())
        runs = instance.get_runs()
        assert runs and not any(leaks(dg.serialize_value(r)) for r in runs)  # run config: the EnvVar, not its value
        for run in runs:
            assert not any(leaks(dg.serialize_value(e)) or leaks(e.message) for e in instance.all_logs(run.run_id))
    resource = build_resources(Settings.from_env(env))["credentials"]
    assert isinstance(resource, CredentialsResource) and not leaks(repr(resource))
    out, err = capfd.readouterr()
    assert not leaks(out + err)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not [p for p in written if leaks(p.read_bytes())]
    found = verify_file(next((tmp_path / "published" / "tiny" / "s01").glob("*.mp4")))
    assert found.ok and found.signer.common_name == "shotline test signer"
