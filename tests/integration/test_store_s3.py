"""The shared working store on S3 (the local S3 server) with its bounded local cache, and open_store's
configuration errors."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from shotline.errors import ConfigError
from shotline.hashing import sha256_bytes, sha256_file
from shotline.images import ingest_image, stored_image
from shotline.store import StoreConfigError, StoreError, WorkStore, open_store
from shotline.store_s3 import S3WorkStore
from testkit.fakes.s3_server import S3Env

PREFIX = "work"
MiB = 1 << 20


def s3_store(s3_env: S3Env, home: Path, *, cap: int = 1 << 30, min_age_s: float = 600.0) -> S3WorkStore:
    store = open_store(s3_env.uri(PREFIX), home, cache_max_bytes=cap, min_cache_age_s=min_age_s)
    assert isinstance(store, S3WorkStore)
    return store


def bucket_keys(s3_env: S3Env) -> set[str]:
    pages = s3_env.client.get_paginator("list_objects_v2").paginate(Bucket=s3_env.bucket, Prefix=f"{PREFIX}/")
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def cached_files(home: Path) -> set[str]:
    return {p.name for p in (home / "cache" / "objects").rglob("*") if p.is_file()}


def scratch_file(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def age(path: Path, seconds: float) -> None:
    """Make a cached file look last used `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


# --- round trips ----------------------------------------------------------------------------------------


def test_objects_and_records_round_trip_through_the_bucket(s3_env: S3Env, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = s3_store(s3_env, home)
    store.check()
    video = scratch_file(tmp_path / "scratch", "clip.mp4", b"not really a video" * 100)
    sha = sha256_file(video)

    obj = store.put_file(video, ".mp4")
    assert not video.exists()  # moved into the cache
    assert obj.sha256 == sha and obj.path.read_bytes() == b"not really a video" * 100
    assert obj.path.is_relative_to(home / "cache") and obj.path == store.object_path(sha, ".mp4")
    key = f"{PREFIX}/objects/{sha[:2]}/{sha}.mp4"
    assert obj.uri == obj.remote_uri == s3_env.uri(key) == store.object_uri(sha, ".mp4")
    head = s3_env.client.head_object(Bucket=s3_env.bucket, Key=key)
    assert head["Metadata"]["sha256"] == sha and head["ContentType"] == "video/mp4"

    prompt = store.put_bytes(b'{"text": "dolly in"}', ".prompt.json")
    assert prompt.sha256 == sha256_bytes(b'{"text": "dolly in"}')

    record = {"sha256": sha, "cost_usd": 0.35, "nested": {"a": [1, 2]}}
    assert store.put_record("finals", "k1", record) == s3_env.uri(f"{PREFIX}/records/finals/k1.json")

    assert bucket_keys(s3_env) == {
        key,
        f"{PREFIX}/objects/{prompt.sha256[:2]}/{prompt.sha256}.prompt.json",
        f"{PREFIX}/records/finals/k1.json",
        f"{PREFIX}/_probe/check.json",
    }
    again = store.get(sha, ".mp4")
    assert again is not None and again.path == obj.path and again.uri == obj.uri
    assert store.get_record("finals", "k1") == record
    assert store.get_record("finals", "absent") is None
    assert store.get("0" * 64, ".mp4") is None and not store.exists("0" * 64, ".mp4")
    assert store.get("", ".mp4") is None  # what a missing sha256 in metadata becomes
    assert store.exists(sha, ".mp4")


def test_a_multipart_upload_is_verified_and_found_by_its_sha256(s3_env: S3Env, tmp_path: Path) -> None:
    small_parts = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, preferred_transfer_client="classic"
    )
    store = S3WorkStore(s3_env.uri(PREFIX), tmp_path / "a", cache_max_bytes=1 << 30, transfer=small_parts)
    data = os.urandom(11 * MiB)
    obj = store.put_file(scratch_file(tmp_path / "scratch", "big.mp4", data), move=False)
    other = S3WorkStore(s3_env.uri(PREFIX), tmp_path / "b", cache_max_bytes=1 << 30, transfer=small_parts)
    fetched = other.get(obj.sha256, ".mp4")
    assert fetched is not None and fetched.path.read_bytes() == data


def test_a_second_host_with_an_empty_home_finds_everything(s3_env: S3Env, tmp_path: Path) -> None:
    first = s3_store(s3_env, tmp_path / "host-a")
    video = first.put_file(scratch_file(tmp_path / "scratch", "final.mp4", b"final cut"), ".mp4")
    thumb = first.put_bytes(b"jpeg bytes", ".jpg")
    first.put_record("clips", "key", {"sha256": video.sha256})

    second = s3_store(s3_env, tmp_path / "host-b")
    assert cached_files(tmp_path / "host-b") == set()
    found = second.get(video.sha256, ".mp4")
    assert found is not None and found.path.read_bytes() == b"final cut"
    assert found.path.is_relative_to(tmp_path / "host-b" / "cache") and found.uri == video.uri
    assert second.get(thumb.sha256, ".jpg") is not None
    assert second.get_record("clips", "key") == {"sha256": video.sha256}
    # no temp files are left beside what was fetched
    assert cached_files(tmp_path / "host-b") == {f"{video.sha256}.mp4", f"{thumb.sha256}.jpg"}


def test_a_normalised_image_is_found_from_another_host(s3_env: S3Env, tmp_path: Path) -> None:
    from PIL import Image

    board = tmp_path / "board"
    (board / "images").mkdir(parents=True)
    Image.new("RGB", (640, 360), (200, 120, 40)).save(board / "images" / "still.png")
    img = ingest_image("images/still.png", board, s3_store(s3_env, tmp_path / "a"), storyboard_id="sb", shot_id="s1")

    elsewhere = s3_store(s3_env, tmp_path / "b")
    again = stored_image(img.model_dump(mode="json", exclude={"path"}), elsewhere)
    assert again.path.is_relative_to(tmp_path / "b") and sha256_file(again.path) == img.sha256
    with pytest.raises(Exception, match=r"not in the working store s3://"):
        stored_image({**img.model_dump(mode="json"), "sha256": "1" * 64}, elsewhere)


def test_deleting_the_cache_or_the_whole_home_is_harmless(s3_env: S3Env, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = s3_store(s3_env, home)
    obj = store.put_bytes(b"keep me", ".bin")
    shutil.rmtree(home / "cache")
    found = store.get(obj.sha256, ".bin")
    assert found is not None and found.path.read_bytes() == b"keep me"
    shutil.rmtree(home)
    found = store.get(obj.sha256, ".bin")
    assert found is not None and found.path.read_bytes() == b"keep me"
    shutil.rmtree(home)
    again = store.put_bytes(b"keep me", ".bin")
    assert again.path.read_bytes() == b"keep me"
    with store.scratch("task") as work:
        assert work.is_relative_to(home / "scratch")


def test_an_object_already_in_the_bucket_is_not_uploaded_again(s3_env: S3Env, tmp_path: Path) -> None:
    store = s3_store(s3_env, tmp_path / "a")
    obj = store.put_file(scratch_file(tmp_path / "s", "x.mp4", b"same bytes"), ".mp4")
    key = f"{PREFIX}/objects/{obj.sha256[:2]}/{obj.sha256}.mp4"
    # mark the stored object (same content, same checksum): a second upload would drop the mark
    s3_env.client.copy_object(
        Bucket=s3_env.bucket,
        Key=key,
        CopySource={"Bucket": s3_env.bucket, "Key": key},
        Metadata={"sha256": obj.sha256, "mark": "first"},
        MetadataDirective="REPLACE",
        ChecksumAlgorithm="SHA256",
    )
    other = s3_store(s3_env, tmp_path / "b")
    src = scratch_file(tmp_path / "s", "y.mp4", b"same bytes")
    again = other.put_file(src, ".mp4")
    assert again.sha256 == obj.sha256 and not src.exists()
    assert s3_env.client.head_object(Bucket=s3_env.bucket, Key=key)["Metadata"]["mark"] == "first"


def test_a_failed_upload_leaves_the_source_in_place(s3_env: S3Env, tmp_path: Path) -> None:
    s3_env.client.delete_bucket(Bucket=s3_env.bucket)
    store = s3_store(s3_env, tmp_path / "home")
    src = scratch_file(tmp_path / "s", "x.mp4", b"precious")
    with pytest.raises(StoreError, match=s3_env.bucket):
        store.put_file(src, ".mp4")
    assert src.read_bytes() == b"precious" and cached_files(tmp_path / "home") == set()


# --- integrity ------------------------------------------------------------------------------------------


def test_a_corrupted_object_in_the_bucket_is_refused(s3_env: S3Env, tmp_path: Path) -> None:
    obj = s3_store(s3_env, tmp_path / "a").put_bytes(b"the real clip", ".mp4")
    key = f"{PREFIX}/objects/{obj.sha256[:2]}/{obj.sha256}.mp4"
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=key, Body=b"bit rot")

    other = s3_store(s3_env, tmp_path / "b")
    with pytest.raises(StoreError, match=r"corrupt.*not the") as caught:
        other.get(obj.sha256, ".mp4")
    assert s3_env.uri(key) in str(caught.value)
    assert not (tmp_path / "b" / "cache" / "objects").exists() or cached_files(tmp_path / "b") == set()


def test_putting_the_right_bytes_again_repairs_a_corrupted_object(s3_env: S3Env, tmp_path: Path) -> None:
    obj = s3_store(s3_env, tmp_path / "a").put_bytes(b"the real clip", ".mp4")
    key = f"{PREFIX}/objects/{obj.sha256[:2]}/{obj.sha256}.mp4"
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=key, Body=b"bit rot")
    s3_store(s3_env, tmp_path / "b").put_bytes(b"the real clip", ".mp4")
    fetched = s3_store(s3_env, tmp_path / "c").get(obj.sha256, ".mp4")
    assert fetched is not None and fetched.path.read_bytes() == b"the real clip"


# --- the bounded cache ----------------------------------------------------------------------------------


def test_the_cap_evicts_the_least_recently_used_first(s3_env: S3Env, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = s3_store(s3_env, home, cap=3000, min_age_s=0)
    a, b, c = (store.put_bytes(bytes([n]) * 1000, ".bin") for n in (1, 2, 3))
    for obj, seconds in ((a, 300), (b, 200), (c, 100)):
        age(obj.path, seconds)
    assert store.get(a.sha256, ".bin") is not None  # a hit makes `a` the most recently used

    d = store.put_bytes(b"\x04" * 1000, ".bin")
    assert cached_files(home) == {p.path.name for p in (a, c, d)}  # b was the least recently used
    assert store.cache.size() <= 3000

    age(a.path, 50)
    age(c.path, 40)
    again = store.get(b.sha256, ".bin")  # still in the bucket
    assert again is not None and again.path.read_bytes() == b"\x02" * 1000
    assert cached_files(home) == {p.path.name for p in (b, c, d)}


def test_files_used_in_the_last_ten_minutes_are_never_evicted(s3_env: S3Env, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = s3_store(s3_env, home, cap=1500)  # the default ten minutes
    a, b, c = (store.put_bytes(bytes([n]) * 1000, ".bin") for n in (1, 2, 3))
    assert cached_files(home) == {p.path.name for p in (a, b, c)}  # over the cap, but all in use

    age(a.path, 11 * 60)
    age(b.path, 9 * 60)
    store.get(c.sha256, ".bin")
    assert cached_files(home) == {p.path.name for p in (b, c)}  # only `a` was old enough to go


def test_an_object_bigger_than_the_cap_is_still_handed_out(s3_env: S3Env, tmp_path: Path) -> None:
    store = s3_store(s3_env, tmp_path / "home", cap=10, min_age_s=0)
    obj = store.put_bytes(b"x" * 100, ".bin")
    assert obj.path.read_bytes() == b"x" * 100
    got = s3_store(s3_env, tmp_path / "other", cap=10, min_age_s=0).get(obj.sha256, ".bin")
    assert got is not None and got.path.read_bytes() == b"x" * 100


# --- configuration --------------------------------------------------------------------------------------


def test_an_empty_uri_or_a_folder_is_a_local_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    local = open_store("", home, cache_max_bytes=1)
    assert type(local) is WorkStore and local.root == home.resolve()
    obj = local.put_bytes(b"x", ".bin")
    assert obj.uri == obj.path.as_uri() and obj.remote_uri is None
    assert obj.path == home.resolve() / "objects" / obj.sha256[:2] / f"{obj.sha256}.bin"
    folder = open_store(str(tmp_path / "shared"), home, cache_max_bytes=1)
    assert type(folder) is WorkStore and folder.root == (tmp_path / "shared").resolve()
    assert open_store((tmp_path / "shared").as_uri(), home, cache_max_bytes=1).root == folder.root
    folder.check()


@pytest.mark.parametrize(
    "uri",
    ["https://bucket.example.com/prefix", "gs://bucket/prefix", "s3://Not_A_Bucket/prefix", "s3://x/prefix"],
)
def test_a_bad_uri_names_the_variable(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SHOTLINE_STORE_URI") as caught:
        open_store(uri, tmp_path / "home", cache_max_bytes=1 << 20)
    assert isinstance(caught.value, StoreConfigError) and caught.value.field == "SHOTLINE_STORE_URI"


def test_a_credential_written_into_the_uri_is_not_repeated(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="SHOTLINE_STORE_URI") as caught:
        open_store("s3://AKIAEXAMPLE:wJalrSECRET@my-bucket/prefix", tmp_path / "home", cache_max_bytes=1)
    assert "wJalrSECRET" not in str(caught.value) and "AKIAEXAMPLE" not in str(caught.value)


def test_a_file_is_not_a_store_folder(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StoreConfigError, match=r"SHOTLINE_STORE_URI.*is a file"):
        open_store(str(tmp_path / "a-file"), tmp_path / "home", cache_max_bytes=1)


def test_check_names_a_missing_bucket(s3_env: S3Env, tmp_path: Path) -> None:
    store = open_store("s3://no-such-bucket-for-shotline/work", tmp_path / "home", cache_max_bytes=1 << 20)
    with pytest.raises(StoreConfigError, match=r"SHOTLINE_STORE_URI=s3://no-such-bucket-for-shotline/work/: bucket"):
        store.check()


def test_check_without_credentials_names_the_variable_and_no_secret(
    s3_env: S3Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_store(s3_env.uri(PREFIX), tmp_path / "home", cache_max_bytes=1 << 20)
    with pytest.raises(StoreConfigError, match=r"SHOTLINE_STORE_URI.*no AWS credentials") as caught:
        store.check()
    assert caught.value.field == "SHOTLINE_STORE_URI"


def test_check_errors_never_show_the_secret_key(s3_env: S3Env, tmp_path: Path) -> None:
    store = open_store("s3://no-such-bucket-for-shotline/work", tmp_path / "home", cache_max_bytes=1 << 20)
    with pytest.raises(StoreConfigError) as caught:
        store.check()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(caught.value)
    assert os.environ["AWS_ACCESS_KEY_ID"] not in str(caught.value)


def test_an_unwritable_home_names_shotline_home(s3_env: S3Env, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = open_store(s3_env.uri(PREFIX), blocker / "home", cache_max_bytes=1 << 20)
    with pytest.raises(StoreConfigError, match="SHOTLINE_HOME") as caught:
        store.check()
    assert caught.value.field == "SHOTLINE_HOME"


def test_the_workspace_resource_opens_the_store_once(s3_env: S3Env, tmp_path: Path) -> None:
    from assets.resources import WorkspaceResource

    workspace = WorkspaceResource(
        storyboards=str(tmp_path / "boards"),
        home=str(tmp_path / "home"),
        store_uri=s3_env.uri(PREFIX),
        cache_max_bytes=1 << 20,
    )
    store = workspace.store()
    assert isinstance(store, S3WorkStore) and store.cache.max_bytes == 1 << 20 and workspace.store() is store
    bad = WorkspaceResource(home=str(tmp_path / "home"), store_uri="s3://no-such-bucket-for-shotline/x")
    with pytest.raises(ConfigError, match=r"SHOTLINE_STORE_URI.*does not exist"):
        bad.store()
    assert type(WorkspaceResource(home=str(tmp_path / "home")).store()) is WorkStore


# --- through Dagster: hosts that share only the bucket --------------------------------------------------


def test_final_clip_on_a_host_that_never_made_the_raw_clip(
    s3_env: S3Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from assets.upstream import latest_metadata_or_none
    from pipelines.definitions import build_definitions
    from shotline.config import Settings
    from testkit.storyboard_factory import tiny_storyboard

    monkeypatch.delenv("FAL_KEY", raising=False)
    tiny_storyboard(tmp_path / "boards", "tiny", n_shots=1, duration=1)
    shared = {
        "SHOTLINE_STORYBOARDS": str(tmp_path / "boards"),
        "SHOTLINE_PUBLISH_URI": str(tmp_path / "published"),
        "SHOTLINE_STORE_URI": s3_env.uri(PREFIX),
    }
    key = "tiny__s01"

    def run_on(home: Path, assets: list[str], instance: dg.DagsterInstance) -> None:
        job = build_definitions(
            Settings.from_env({**shared, "SHOTLINE_HOME": str(home)})
        ).resolve_implicit_global_asset_job_def()
        selection = [dg.AssetKey(a) for a in assets]
        assert job.execute_in_process(partition_key=key, instance=instance, asset_selection=selection).success

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("shots", [key])
        run_on(tmp_path / "host-a", ["source_image", "clip_prompt", "raw_clip"], instance)
        shutil.rmtree(tmp_path / "host-a")  # that host is gone
        run_on(tmp_path / "host-b", ["final_clip", "published_clip"], instance)
        raw = latest_metadata_or_none(instance, "raw_clip", key)
        final = latest_metadata_or_none(instance, "final_clip", key)
    assert raw is not None and raw["uri"].startswith(s3_env.uri(f"{PREFIX}/objects/"))
    assert final is not None and final["uri"] == s3_env.uri(
        f"{PREFIX}/objects/{final['sha256'][:2]}/{final['sha256']}.mp4"
    )
    assert (tmp_path / "host-b" / "cache" / "objects" / raw["sha256"][:2] / f"{raw['sha256']}.mp4").is_file()
    assert list((tmp_path / "published" / "tiny" / "s01").glob("*.mp4"))
