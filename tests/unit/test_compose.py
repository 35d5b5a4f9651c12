"""docker-compose.yaml, validated by `docker-compose config` (no Docker engine needed) against the .env template."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
TEMPLATE = REPO / ".env.example"
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET",
           "AIRFLOW_ADMIN_PASSWORD")
AIRFLOW_SERVICES = ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu")

needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose is not installed (.ci/run installs Debian's docker-compose)")


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def mounts(service: dict) -> dict[str, dict]:
    """Return target -> {source, read_only, type} for short ("src:dst:ro") and long volume syntax alike."""
    out = {}
    for volume in service["volumes"]:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith("/") else "volume"
            volume = {"source": source, "target": target, "type": kind, "read_only": parts[2:] == ["ro"]}
        out[volume["target"]] = volume
    return out


def host_ips(service: dict) -> list[str]:
    """Return the host address of each published port ("ip:host:container" or long syntax)."""
    return [p.get("host_ip", "") if isinstance(p, dict) else p.rsplit(":", 2)[0] if p.count(":") == 2 else ""
            for p in service["ports"]]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """Return the resolved configuration with the template's blanks filled by stand-in secrets."""
    env = tmp_path_factory.mktemp("compose") / ".env"
    text = TEMPLATE.read_text()
    for name in SECRETS:
        text = re.sub(rf"^{name}=$", f"{name}=stand-in-{name.lower()}", text, flags=re.M)
    env.write_text(text)
    result = compose_config(env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_template_leaves_every_secret_blank_and_the_compose_file_holds_none():
    template = dict(line.split("=", 1) for line in TEMPLATE.read_text().splitlines()
                    if line and not line.startswith("#"))
    assert all(template[name] == "" for name in SECRETS)
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert f"${{{name}:?" in text, f"{name} must come from .env and be required"
    assert ".env" in (REPO / ".gitignore").read_text().split()


@needs_compose
def test_config_refuses_to_render_without_the_secrets(tmp_path):
    env = tmp_path / ".env"
    env.write_text(TEMPLATE.read_text())  # blanks left as they are
    result = compose_config(env)
    assert result.returncode != 0 and "set in .env" in result.stderr


@needs_compose
def test_celery_cluster_services_and_shared_settings(config):
    services = config["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis"} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert env["AIRFLOW__CORE__FERNET_KEY"] == "stand-in-airflow_fernet_key"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:stand-in-")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:stand-in-redis_password@redis")
        assert env["RECSYS_HOME"] == "/opt/recsys-home"
        mounted = mounts(services[name])
        for folder in ("dags", "plugins", "recsys_tasks", "sql"):
            assert mounted[f"/opt/recsys/{folder}"]["source"] == str(REPO / folder)
            assert mounted[f"/opt/recsys/{folder}"].get("read_only") is True
        home = mounted["/opt/recsys-home"]
        assert home["type"] == "volume" and home["source"].endswith("recsys-home")
    assert services["airflow-scheduler"]["command"] == ["scheduler"]
    assert services["airflow-dag-processor"]["command"] == ["dag-processor"]
    assert services["airflow-triggerer"]["command"] == ["triggerer"]
    init = services["airflow-api-server"]["depends_on"]["airflow-init"]
    assert init["condition"] == "service_completed_successfully"


@needs_compose
def test_ui_listens_on_loopback_unless_told_otherwise(config):
    ips = host_ips(config["services"]["airflow-api-server"])
    assert ips and set(ips) == {"127.0.0.1"}, ips


@needs_compose
def test_gpu_worker_reserves_one_nvidia_gpu_and_serves_the_gpu_queue(config):
    worker = config["services"]["airflow-worker-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    command = worker["command"]
    assert command[command.index("--queues") + 1] == "gpu"
    assert worker["environment"]["RECSYS_GPU_QUEUE"] == "gpu"
    assert worker["environment"]["RECSYS_LM_PROCESSES"] == "1"  # torchrun only when asked (.env)
    assert worker["shm_size"] in ("2gb", 2 * 2**30)  # NCCL's shared memory between torchrun processes
    cpu = config["services"]["airflow-worker"]
    assert cpu["command"][cpu["command"].index("--queues") + 1] == "default" and "deploy" not in cpu


@needs_compose
def test_init_hands_the_fresh_volumes_to_the_airflow_uid(config):
    init = config["services"]["airflow-init"]
    script = " ".join(init["command"])
    assert init["user"] == "0:0" and init["environment"]["AIRFLOW_UID"] == "50000"
    assert "/opt/recsys-home /opt/airflow/logs /opt/airflow/secrets" in script and "chown -R" in script
    assert "umask 077" in script  # the admin password file is readable by its owner only
