"""The deployment profiles load in the installed Dagster: every instance file passes the instance schema and
each configurable part (Postgres storage, run coordinator, K8s and Docker launchers, compute logs) passes its
own class's config processing; and the files that must agree with each other (Helm values, compose file,
Dockerfile, workspace) do. No cluster and no Docker engine here: the Postgres-backed profile is loaded for
real in tests/test_postgres.py."""

from __future__ import annotations

import importlib
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._serdes.config_class import ConfigurableClassData
from dagster_k8s.models import k8s_snake_case_dict
from kubernetes.client import V1Volume, V1VolumeMount

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROFILES = {
    "dev": REPO / "dagster.yaml",
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
    for volumes, mounts in (
        (chart_launcher["volumes"], chart_launcher["volumeMounts"]),
        (launcher["volumes"], launcher["volume_mounts"]),
    ):
        claims = [k8s_snake_case_dict(V1Volume, v)["persistent_volume_claim"]["claim_name"] for v in volumes]
        assert claims == ["shotline-home"]
        assert [k8s_snake_case_dict(V1VolumeMount, m)["mount_path"] for m in mounts] == [home]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == workspace_module()
    assert deployment["volumeMounts"] == chart_launcher["volumeMounts"]
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
        assert compose["volumes"][volume]["name"] == volume
        if volume == "shotline-home":
            assert path == env["SHOTLINE_HOME"] == dockerfile_env()["SHOTLINE_HOME"]
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


def workspace_module() -> str:
    return load(REPO / "workspace.yaml")["load_from"][0]["python_module"]["module_name"]


def dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return dict(re.findall(r"(\w+)=(\S+)", re.search(r"^ENV (.+)$", text, re.M).group(1)))
