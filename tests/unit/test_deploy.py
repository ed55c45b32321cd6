"""The deployment profiles load in the installed Dagster: every instance file passes the instance schema and
each configurable part (Postgres storage, run coordinator, K8s and Docker launchers, compute logs) passes its
own class's config processing; and the files that must agree with each other (Helm values, compose file,
Dockerfile, workspace) do. They are shared-nothing: no volume is shared between hosts (no ReadWriteMany claim,
SHOTLINE_HOME an emptyDir or the container's own volume), every profile says where the database and the store
are, and secrets are referenced, never written in. No cluster and no Docker engine here: the Postgres-backed
profile is loaded for real in tests/integration/test_postgres.py."""

from __future__ import annotations

import importlib
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._serdes.config_class import ConfigurableClassData
from dagster_k8s.models import k8s_snake_case_dict
from kubernetes.client import V1Container, V1EnvVar, V1Volume, V1VolumeMount
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROFILES = {
    "dev": REPO / "deploy" / "dagster.dev.yaml",
    "k8s": DEPLOY / "dagster.k8s.yaml",
    "docker": DEPLOY / "dagster.docker.yaml",
}
PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_K8S_JOB_NAMESPACE": "dagster",
    "DAGSTER_COMPUTE_LOG_BUCKET": "logs-bucket",
}
# what every host of a shared-nothing deployment is told: where the database and the bucket are, and that its
# own SHOTLINE_HOME is a bounded cache
WHERE_THINGS_LIVE = {
    "SHOTLINE_DATABASE_URL",
    "PGPASSWORD",
    "SHOTLINE_STORE_URI",
    "SHOTLINE_PUBLISH_URI",
    "SHOTLINE_STORYBOARDS",
    "SHOTLINE_HOME",
    "SHOTLINE_CACHE_MAX_BYTES",
}
SECRETS = {"FAL_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def env_names(node: Any) -> set[str]:
    """Every `{env: NAME}` in an instance file."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_names(v) for v in node)) if node else set()
    return set()


def instance_ref(profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InstanceRef:
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / profile
    home.mkdir()
    shutil.copyfile(PROFILES[profile], home / "dagster.yaml")
    dagster_instance_config(str(home))  # the instance schema, as `dagster` loads it
    return InstanceRef.from_dir(str(home))


def configurable_parts(ref: InstanceRef) -> dict[str, ConfigurableClassData]:
    parts = {
        "storage": ref.storage_data,
        "run_coordinator": ref.run_coordinator_data,
        "run_launcher": ref.run_launcher_data,
        "compute_logs": ref.compute_logs_data,
        "scheduler": ref.scheduler_data,
    }
    return {name: data for name, data in parts.items() if data is not None}


def processed(data: ConfigurableClassData) -> tuple[type, dict[str, Any]]:
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    result = process_config(klass.config_type(), data.config_dict)
    assert result.success, f"{data.module_name}.{data.class_name}: {[e.message for e in result.errors or []]}"
    return klass, result.value


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_passes_dagsters_config_processing(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = instance_ref(profile, tmp_path, monkeypatch)
    parts = configurable_parts(ref)
    classes = {name: processed(data)[0].__name__ for name, data in parts.items()}
    assert classes["run_coordinator"] == "QueuedRunCoordinator"
    if profile == "dev":
        assert classes["storage"] == "DagsterSqliteStorage"
        return
    assert classes["storage"] == "DagsterPostgresStorage"
    assert classes["run_launcher"] == {"k8s": "K8sRunLauncher", "docker": "DockerRunLauncher"}[profile]
    settings = ref.settings
    assert settings["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert settings["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert settings["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == "dagster/backfill"


def test_a_missing_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = instance_ref("k8s", tmp_path, monkeypatch)
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    result = process_config(
        getattr(importlib.import_module(ref.storage_data.module_name), ref.storage_data.class_name).config_type(),
        ref.storage_data.config_dict,
    )
    assert not result.success
    assert "DAGSTER_PG_PASSWORD" in str([e.message for e in result.errors or []])


def test_docker_launcher_builds_from_its_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = instance_ref("docker", tmp_path, monkeypatch)
    klass, value = processed(ref.run_launcher_data)
    launcher = klass.from_config_value(ref.run_launcher_data, value)  # no engine is contacted until a launch
    assert launcher.networks == ["shotline"]
    assert "FAL_KEY" in launcher.env_vars
    # every run container is told where the database and the bucket are, by name: values come from the daemon
    assert WHERE_THINGS_LIVE | SECRETS | {"AWS_ENDPOINT_URL_S3"} <= set(launcher.env_vars)
    assert all("=" not in name for name in launcher.env_vars), "values are copied from the daemon, never written in"


def test_dev_profile_keeps_runs_in_process_and_pools_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = instance_ref("dev", tmp_path, monkeypatch)
    settings = ref.settings
    # queued runs are launched in parallel, so launches do not hold a big backfill back
    assert processed(ref.run_coordinator_data)[1]["dequeue_use_threads"] is True
    runs = settings["concurrency"]["runs"]
    backfill_limit = runs["tag_concurrency_limits"][0]
    assert backfill_limit["key"] == "dagster/backfill" and backfill_limit["value"] == {"applyLimitPerUniqueValue": True}
    # room for runs beyond one backfill, and a backfill can keep the default fal pool busy with runs to spare
    assert runs["max_concurrent_runs"] > backfill_limit["limit"] > settings["concurrency"]["pools"]["default_limit"]
    assert settings["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert settings["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}


def test_helm_values_agree_with_the_k8s_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = load(DEPLOY / "helm" / "values.yaml")
    k8s = load(PROFILES["k8s"])
    launcher = k8s["run_launcher"]["config"]
    chart_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert [s["name"] for s in chart_launcher["envSecrets"]] == launcher["env_secrets"]
    assert [c["name"] for c in chart_launcher["envConfigMaps"]] == launcher["env_config_maps"]
    # both spellings are what K8sRunLauncher turns into Kubernetes objects, which refuses unknown keys
    home = dockerfile_env()["SHOTLINE_HOME"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for volumes, mounts in (
        (chart_launcher["volumes"], chart_launcher["volumeMounts"]),
        (launcher["volumes"], launcher["volume_mounts"]),
        (deployment["volumes"], deployment["volumeMounts"]),
    ):
        (volume,) = [k8s_snake_case_dict(V1Volume, v) for v in volumes]
        assert set(volume) == {"name", "empty_dir"}, f"SHOTLINE_HOME must be the pod's own emptyDir: {volume}"
        (mount,) = [k8s_snake_case_dict(V1VolumeMount, m) for m in mounts]
        assert (mount["name"], mount["mount_path"]) == (volume["name"], home)
    assert [k8s_snake_case_dict(V1Volume, v) for v in chart_launcher["volumes"]] == [
        k8s_snake_case_dict(V1Volume, v) for v in launcher["volumes"]
    ]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == workspace_module()
    assert deployment["volumeMounts"] == chart_launcher["volumeMounts"]
    # run pods take their settings from the run launcher alone, so the two say the same
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    assert deployment["env"] == chart_launcher["runK8sConfig"]["containerConfig"]["env"]
    assert normalized_env(deployment["env"]) == normalized_env(launcher["run_k8s_config"]["container_config"]["env"])
    for container_config in (
        chart_launcher["runK8sConfig"]["containerConfig"],
        launcher["run_k8s_config"]["container_config"],
    ):
        k8s_snake_case_dict(V1Container, container_config)  # a valid container spec, in either spelling
    assert (
        chart_launcher["runK8sConfig"]["containerConfig"]["resources"]
        == launcher["run_k8s_config"]["container_config"]["resources"]
    )
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == k8s["storage"]["postgres"]["postgres_db"]["scheme"]

    # what the chart appends to its dagster.yaml passes the instance schema, with the same limits as the profile
    extra = values["additionalInstanceConfig"]
    assert extra["concurrency"] == k8s["concurrency"]
    assert extra["run_retries"] == k8s["run_retries"]
    assert values["dagsterDaemon"]["runRetries"]["enabled"] is False  # else run_retries would render twice
    assert values["dagsterDaemon"]["runMonitoring"]["freeSlotsAfterRunEndSeconds"] > 0
    instance_dir = tmp_path / "helm"
    instance_dir.mkdir()
    (instance_dir / "dagster.yaml").write_text(yaml.safe_dump({**extra, "telemetry": {"enabled": False}}))
    dagster_instance_config(str(instance_dir))


def test_compose_file_provides_what_the_docker_profile_reads() -> None:
    compose = load(DEPLOY / "docker-compose.yaml")
    profile = load(PROFILES["docker"])
    launcher = profile["run_launcher"]["config"]
    env = compose["x-shotline-env"]
    needed = env_names(profile) | set(launcher["env_vars"])
    assert needed <= set(env), f"not set by docker-compose.yaml: {sorted(needed - set(env))}"
    assert compose["networks"][launcher["network"]]["name"] == launcher["network"]
    for mount in launcher["container_kwargs"]["volumes"]:
        volume, path = mount.split(":")[:2]
        assert compose["volumes"][volume]["name"] == volume  # run containers find it by this name
        assert path != env["SHOTLINE_HOME"]
    assert env["SHOTLINE_HOME"] == dockerfile_env()["SHOTLINE_HOME"]
    for service in ("code", "webserver", "daemon"):
        assert compose["services"][service]["environment"] == env
    daemon_mounts = compose["services"]["daemon"]["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in daemon_mounts
    workspace = load(DEPLOY / "workspace.docker.yaml")["load_from"][0]["grpc_server"]
    assert workspace["host"] in compose["services"]
    assert workspace["location_name"] == load(REPO / "workspace.yaml")["load_from"][0]["python_module"]["location_name"]


def test_dockerfile_serves_the_workspace_module_with_the_deploy_extra() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*?\])\s*$", text, re.M | re.S)
    assert cmd, "no CMD"
    command = yaml.safe_load(cmd.group(1).replace("\\\n", ""))
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == workspace_module()
    assert command[command.index("--location-name") + 1] == "shotline"
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for name in source.split():
            assert (REPO / name).exists(), f"Dockerfile copies {name}, which is not in the repository"
            ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
            assert f"!{name}" in ignore or f"!{name}/" in ignore, f"{name} is excluded from the build context"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    deploy = " ".join(extras["deploy"])
    for package in ("dagster-postgres", "dagster-k8s", "dagster-docker", "dagster-aws"):
        assert package in deploy
    assert '".[deploy]"' in text


def test_no_volume_is_shared_between_hosts() -> None:
    # no claim to a shared volume anywhere, not even in the docs: a host keeps nothing another host needs
    shared = re.compile(r"ReadWriteMany|\bRWX\b|persistent_?volume_?claim|claim_?name|shotline-home", re.I)
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        found = shared.search(path.read_text())
        assert found is None, f"{path.relative_to(REPO)} still asks for a shared volume: {found.group(0)!r}"
    home = dockerfile_env()["SHOTLINE_HOME"]
    # Docker: each container's SHOTLINE_HOME is its own anonymous volume, and nothing is mounted over it
    assert re.search(r"^VOLUME \[\s*\"" + re.escape(home) + r"\"\s*\]\s*$", (DEPLOY / "Dockerfile").read_text(), re.M)
    compose = load(DEPLOY / "docker-compose.yaml")
    launcher = load(PROFILES["docker"])["run_launcher"]["config"]
    mounts = [m for service in compose["services"].values() for m in service.get("volumes", [])]
    for mount in [*mounts, *launcher["container_kwargs"]["volumes"]]:
        target = mount.split(":")[1]
        assert not (target == home or target.startswith(home + "/")), f"{mount} shares SHOTLINE_HOME"
    # Kubernetes: every volume is the pod's own emptyDir, big enough for the cache it is told to keep
    values = load(DEPLOY / "helm" / "values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    k8s_volumes = [
        *deployment["volumes"],
        *values["runLauncher"]["config"]["k8sRunLauncher"]["volumes"],
        *load(PROFILES["k8s"])["run_launcher"]["config"]["volumes"],
    ]
    for name, env in k8s_envs().items():
        cache = int(env["SHOTLINE_CACHE_MAX_BYTES"]["value"])
        for volume in (k8s_snake_case_dict(V1Volume, v) for v in k8s_volumes):
            assert set(volume) == {"name", "empty_dir"}, f"{name}: {volume} is not the pod's own emptyDir"
            assert cache < quantity_bytes(volume["empty_dir"]["size_limit"]), f"{name}: the cache outgrows its emptyDir"


def test_every_profile_says_where_the_database_and_the_store_are() -> None:
    values = load(DEPLOY / "helm" / "values.yaml")
    pg = values["postgresql"]
    for name, env in k8s_envs().items():
        assert set(env) >= WHERE_THINGS_LIVE, f"{name} does not set {sorted(WHERE_THINGS_LIVE - set(env))}"
        literal = {k: v["value"] for k, v in env.items() if "value" in v}
        # the Postgres server Dagster uses (the chart's), as the same user, in a database of its own
        url = check_where_things_live(name, literal)
        assert (url.host, url.port, url.username) == (
            pg["postgresqlHost"],
            pg["service"]["port"],
            pg["postgresqlUsername"],
        )
        assert url.database != pg["postgresqlDatabase"]
        assert dict(url.query) == pg["postgresqlParams"]  # sslmode, as Dagster's own connection
    compose = load(DEPLOY / "docker-compose.yaml")
    for service in ("code", "daemon"):
        env = docker_env(service)
        assert set(env) >= WHERE_THINGS_LIVE, f"compose {service} does not set {sorted(WHERE_THINGS_LIVE - set(env))}"
        url = check_where_things_live(f"compose {service}", env)
        assert url.host == env["DAGSTER_PG_HOST"] and url.host in compose["services"]
        assert url.username == env["DAGSTER_PG_USER"] == compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
        assert env["PGPASSWORD"] == DOTENV["DAGSTER_PG_PASSWORD"]  # libpq's password, from deploy/.env
        assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000" and "minio" in compose["services"]
    # the database in the URL is the one the postgres container's init script creates, and the script is mounted
    init = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["postgres"]["volumes"]}
    (script,) = [src for target, src in init.items() if target.startswith("/docker-entrypoint-initdb.d/")]
    created = re.findall(r"^CREATE DATABASE (\w+);", (DEPLOY / script).read_text(), re.M)
    assert created == [make_url(docker_env("code")["SHOTLINE_DATABASE_URL"]).database]
    # the bucket the compose file creates is the one the store and the publish prefix are in
    bucket_env = compose["services"]["minio-bucket"]["environment"]
    assert (
        compose_interpolate(bucket_env["BUCKET"], DOTENV) == urlsplit(docker_env("code")["SHOTLINE_STORE_URI"]).netloc
    )


def test_secrets_are_referenced_never_written_in() -> None:
    values = load(DEPLOY / "helm" / "values.yaml")
    k8s_launcher = load(PROFILES["k8s"])["run_launcher"]["config"]
    for name, env in k8s_envs().items():
        for var in env.values():
            if SECRET_NAME.search(var["name"]):
                assert "value" not in var, f"{name}: {var['name']} is written in"
                ref = var["value_from"]["secret_key_ref"]
                assert ref == {"name": k8s_launcher["postgres_password_secret"], "key": "postgresql-password"}
        assert not SECRETS & set(env), f"{name}: {SECRETS & set(env)} belong in the Secret shotline-secrets"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for where, secrets in {
        "code location": deployment["envSecrets"],
        "run pods": values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"],
        "webserver": values["dagsterWebserver"]["envSecrets"],
        "daemon": values["dagsterDaemon"]["envSecrets"],
    }.items():
        assert {"name": "shotline-secrets"} in secrets, f"the {where} does not read the Secret shotline-secrets"
    assert "shotline-secrets" in k8s_launcher["env_secrets"]
    # the README's command makes that Secret with the keys the code reads
    readme = (DEPLOY / "README.md").read_text().replace("\\\n", " ")
    (command,) = re.findall(r"create secret generic shotline-secrets (.*)", readme)
    assert set(re.findall(r"--from-literal=(\w+)=", command)) >= SECRETS

    # Docker: every secret is a ${NAME} taken from deploy/.env, with no default written in
    compose = load(DEPLOY / "docker-compose.yaml")
    reference = re.compile(r"\$\{\w+(?::\?[^}]*|:?-)?\}")
    environments = {"x-shotline-env": compose["x-shotline-env"]} | {
        service: spec.get("environment", {}) for service, spec in compose["services"].items()
    }
    for where, env in environments.items():
        for var, value in env.items():
            if SECRET_NAME.search(var) or var.startswith("MINIO_ROOT_"):
                assert reference.fullmatch(str(value)), f"{where}: {var} is written in: {value!r}"
    # and no file here carries a URL with a password in it
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for text in strings(load(path)):
            for found in re.findall(r"\w+://\S+", text):
                assert urlsplit(found).password is None, f"{path.relative_to(REPO)}: a password in {found}"


# what deploy/.env holds in the README's example (values invented for the test)
DOTENV = {
    "SHOTLINE_IMAGE": "shotline:1",
    "DAGSTER_PG_PASSWORD": "pg-password-from-dotenv",
    "FAL_KEY": "fal-key-from-dotenv",
    "AWS_ACCESS_KEY_ID": "access-key-from-dotenv",
    "AWS_SECRET_ACCESS_KEY": "secret-key-from-dotenv",
}
COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose_interpolate(text: str, env: dict[str, str]) -> str:
    """What Compose makes of a value: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, $$ for $."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        value = env.get(name)
        if (op in (":-", ":?") and not value) or (op in ("-", "?") and value is None):
            if op.endswith("?"):
                raise AssertionError(f"docker compose refuses to start without {name}: {arg}")
            return arg
        return value or ""

    return "$".join(COMPOSE_VARIABLE.sub(one, part) for part in text.split("$$"))


def docker_env(service: str) -> dict[str, str]:
    environment = load(DEPLOY / "docker-compose.yaml")["services"][service]["environment"]
    return {name: compose_interpolate(str(value), DOTENV) for name, value in environment.items()}


def check_where_things_live(name: str, env: dict[str, str]) -> Any:
    """The database URL and the bucket prefixes every host is given; returns the parsed database URL."""
    url = make_url(env["SHOTLINE_DATABASE_URL"])  # SQLAlchemy's own parser, as shotline opens it
    assert url.get_backend_name() == "postgresql", f"{name}: the database must be the shared Postgres server"
    assert url.password is None, f"{name}: the password belongs in PGPASSWORD, from a secret"
    assert url.database == "shotline"
    store, publish, storyboards = (
        urlsplit(env[k]) for k in ("SHOTLINE_STORE_URI", "SHOTLINE_PUBLISH_URI", "SHOTLINE_STORYBOARDS")
    )
    assert store.scheme == publish.scheme == storyboards.scheme == "s3", f"{name}: the store and clips live on S3"
    assert store.netloc == publish.netloc == storyboards.netloc, f"{name}: one bucket"
    assert store.path.endswith("/work")
    prefixes = [p.path.rstrip("/") + "/" for p in (store, publish, storyboards)]
    for a in prefixes:
        assert [b for b in prefixes if b.startswith(a)] == [a], f"{name}: {a} overlaps another prefix"
    assert env["SHOTLINE_HOME"] == dockerfile_env()["SHOTLINE_HOME"]
    assert int(env["SHOTLINE_CACHE_MAX_BYTES"]) > 0
    return url


def normalized_env(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A container's env list, in either spelling, as name -> its V1EnvVar fields (the model refuses unknown keys)."""
    env: dict[str, dict[str, Any]] = {}
    for entry in entries:
        var = k8s_snake_case_dict(V1EnvVar, entry)
        assert var["name"] not in env, f"{var['name']} is set twice"
        env[var["name"]] = var
    return env


def k8s_envs() -> dict[str, dict[str, dict[str, Any]]]:
    values = load(DEPLOY / "helm" / "values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    chart_runs = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]
    k8s_runs = load(PROFILES["k8s"])["run_launcher"]["config"]["run_k8s_config"]["container_config"]
    return {
        "helm code location": normalized_env(deployment["env"]),
        "helm run pods": normalized_env(chart_runs["env"]),
        "dagster.k8s.yaml run pods": normalized_env(k8s_runs["env"]),
    }


def quantity_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity).groups()  # type: ignore[union-attr]
    return int(number) << {None: 0, "Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40}[unit]


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def workspace_module() -> str:
    return load(REPO / "workspace.yaml")["load_from"][0]["python_module"]["module_name"]


def dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return dict(re.findall(r"(\w+)=(\S+)", re.search(r"^ENV (.+)$", text, re.M).group(1)))
