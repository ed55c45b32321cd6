"""Bad configuration is refused at start-up, naming the variable, before any run or money."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shotline.config import Settings
from shotline.errors import ConfigError
from shotline.preflight import preflight
from testkit.fakes.s3_server import S3Env
from testkit.postgres_server import Postgres

REPO = Path(__file__).resolve().parents[2]


def settings(tmp_path: Path, **env: str) -> Settings:
    (tmp_path / "storyboards").mkdir(exist_ok=True)
    base = {"SHOTLINE_HOME": str(tmp_path / "home"), "SHOTLINE_STORYBOARDS": str(tmp_path / "storyboards")}
    return Settings.from_env({**base, **env})


def test_the_defaults_pass_and_say_what_was_checked(tmp_path: Path) -> None:
    checked = preflight(settings(tmp_path))
    assert [line.split(":")[0] for line in checked] == [
        "database",
        "work store",
        "publish to",
        "storyboards",
        "content credentials",
    ]
    assert (tmp_path / "home" / "shotline.db").is_file()


def test_shared_postgres_and_s3_pass(tmp_path: Path, postgres: Postgres, s3_env: S3Env) -> None:
    url = postgres.url(postgres.create_database())
    checked = preflight(
        settings(
            tmp_path,
            SHOTLINE_DATABASE_URL=url,
            SHOTLINE_STORE_URI=s3_env.uri("work"),
            SHOTLINE_PUBLISH_URI=s3_env.uri("published"),
        )
    )
    assert "postgresql" in checked[0] and s3_env.bucket in checked[1]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SHOTLINE_DATABASE_URL": "postgresql://shotline:s3cret-pw@127.0.0.1:1/nowhere"}, "SHOTLINE_DATABASE_URL"),
        ({"SHOTLINE_DATABASE_URL": "mysql://u@h/db"}, "SHOTLINE_DATABASE_URL"),
        ({"SHOTLINE_DATABASE_URL": "not a url at all"}, "SHOTLINE_DATABASE_URL"),
        ({"SHOTLINE_STORE_URI": "ftp://host/x"}, "SHOTLINE_STORE_URI"),
        ({"SHOTLINE_GENERATOR": "fal"}, "FAL_KEY"),
    ],
)
def test_a_setting_that_cannot_work_is_named(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        preflight(settings(tmp_path, **env))
    assert caught.value.field == variable and variable in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


def test_missing_buckets_are_named(tmp_path: Path, s3_env: S3Env) -> None:
    with pytest.raises(ConfigError, match="SHOTLINE_STORE_URI"):
        preflight(settings(tmp_path, SHOTLINE_STORE_URI="s3://no-such-bucket-here/work"))
    with pytest.raises(ConfigError, match="SHOTLINE_PUBLISH_URI"):
        preflight(settings(tmp_path, SHOTLINE_PUBLISH_URI="s3://no-such-bucket-here/published"))


def test_the_cli_exits_1_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "storyboards").mkdir()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("shotline")), "preflight"],
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "SHOTLINE_HOME": str(tmp_path / "home"),
            "SHOTLINE_STORYBOARDS": str(tmp_path / "storyboards"),
            "SHOTLINE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "SHOTLINE_DATABASE_URL" in done.stderr
