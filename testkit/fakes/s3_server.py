"""A real S3-compatible server on loopback (moto's server mode) and an environment pointing boto3 at it.

`s3_server` is one in-process ThreadedMotoServer per test session; `s3_env` gives each test a fresh bucket
and sets boto3's own variables (AWS_ENDPOINT_URL and dummy credentials), so the code under test builds its
client exactly as in production. moto checks neither checksums nor presigned signatures: tests that care
compare checksums themselves.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Env:
    endpoint: str
    bucket: str
    client: BaseClient

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1 (port chosen by the OS)."""
    # Werkzeug logs every request at INFO on its own handler unless the logger already has a level.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(
    s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Env]:
    """A fresh bucket, and boto3's environment pointing at the moto server with dummy credentials."""
    no_files = tmp_path_factory.mktemp("aws") / "absent"
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # Keep the developer's own ~/.aws configuration and any instance metadata out of the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(Path(no_files, "config")))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(Path(no_files, "credentials")))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield S3Env(endpoint=s3_server, bucket=bucket, client=client)
    finally:
        # moto keeps every object in memory: drop this test's state.
        httpx.post(f"{s3_server}/moto-api/reset", timeout=10)
