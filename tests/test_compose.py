"""The compose deployment, checked by reading it (and by `docker compose config` where that client exists)."""
from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

from hashtale.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
ONE_SHOT = {"migrate", "export"}  # run once and exit: nothing to probe
SECRET_SETTINGS = ("SECRET_KEY", "WEBHOOK_SECRET", "VERIFY_TOKEN", "DATABASE_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def seconds(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+)(s|m)", duration).groups()
    return int(value) * (60 if unit == "m" else 1)


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
        else:
            assert service["healthcheck"]["test"], name
    assert compose["services"]["worker"]["healthcheck"]["test"] == ["CMD", "hashtale", "worker-health"]
    assert "/healthz" in " ".join(compose["services"]["webhook"]["healthcheck"]["test"])


def test_no_secret_has_a_default_and_every_one_comes_from_a_docker_secret(compose):
    text = COMPOSE.read_text()
    assert not re.search(r"\$\{\w*(PASSWORD|SECRET|TOKEN|KEY)\w*:-", text)  # no ${SECRET:-default} anywhere
    environment = compose["x-app-env"]
    for name in SECRET_SETTINGS:
        secret_file = environment[f"{name}_FILE"]
        assert secret_file.startswith("/run/secrets/") and name not in environment
        assert compose["secrets"][secret_file.rsplit("/", 1)[1]]["file"].startswith("./secrets/")
    assert ":" not in environment["DATABASE_URL"].split("@")[0].split("//")[1]  # no password in the URL
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "secrets/" in (PROJECT_ROOT / ".gitignore").read_text().split()


def test_triton_drains_before_it_is_killed_and_runs_the_tested_release(compose):
    triton = compose["services"]["triton"]
    drain = int(re.search(r"--exit-timeout-secs=(\d+)", " ".join(triton["command"])).group(1))
    assert seconds(triton["stop_grace_period"]) > drain
    dockerfile = (PROJECT_ROOT / "docker" / "triton.Dockerfile").read_text()
    from hashtale.inference.tritonserver import TRITON_RELEASES, WHEEL_TRITON_VERSION

    image_tag = re.search(r"ARG TRITON_VERSION=(\S+)", dockerfile).group(1)
    assert TRITON_RELEASES[image_tag] == WHEEL_TRITON_VERSION  # the server the tests run is the one compose runs


def test_only_the_proxy_is_public_and_the_admin_is_on_localhost(compose):
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}
    assert [name for name, ports in published.items() if ports] == ["proxy", "admin"]
    assert all(port.startswith("127.0.0.1:") for port in published["admin"])
    assert compose["services"]["webhook"]["environment"]["ADMIN_ENABLED"] == "false"
    nginx = (PROJECT_ROOT / "docker" / "nginx.conf").read_text()
    assert "client_body_timeout" in nginx and "client_header_timeout" in nginx


def test_state_lives_in_named_volumes_and_nothing_runs_as_root(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert volume.endswith(":ro"), (name, volume)  # configuration only, read-only
            else:
                assert source in compose["volumes"], (name, volume)
        assert "user" not in service, name  # the images' own users (the app's is non-root)
    assert "USER hashtale" in (PROJECT_ROOT / "Dockerfile").read_text()
    assert compose["services"]["export"]["volumes"] == ["triton_models:/models"]


def test_the_app_connections_fit_postgresql(compose):
    webhook = compose["services"]["webhook"]["environment"]
    concurrency = int(re.search(r"\d+", webhook["WEB_CONCURRENCY"]).group())
    threads = int(re.search(r"\d+", compose["x-app-env"]["WEBHOOK_THREADS"]).group())
    workers = int(re.search(r":-(\d+)", " ".join(compose["services"]["worker"]["command"])).group(1))
    batch = int(re.search(r"\d+", compose["x-app-env"]["BATCH_SIZE"]).group())  # connections per pool process
    assert concurrency * threads + threads + workers * batch + 3 < 100  # + admin, migrate, metrics; max_connections


def test_images_install_the_pinned_versions_from_an_index_that_has_them():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("nvidia-pytriton") for d in project["dependencies"])  # dev server only
    for dockerfile in (PROJECT_ROOT / "Dockerfile", PROJECT_ROOT / "docker" / "triton.Dockerfile"):
        text = dockerfile.read_text()
        assert "--index-url" not in text and "-c " in text and "constraints.txt" in text, dockerfile
    assert re.search(r"^torch==2\.14\.1$", (PROJECT_ROOT / "constraints.txt").read_text(), re.M)


def test_docker_compose_config_accepts_the_file(tmp_path):
    """Where a compose client exists (not on these machines: no Docker daemon or plugin), it must accept the file."""
    client = shutil.which("docker")
    if client is None or subprocess.run([client, "compose", "version"], capture_output=True).returncode != 0:
        return  # read-only checks above are what this machine can do
    shutil.copytree(PROJECT_ROOT / "docker", tmp_path / "docker")
    shutil.copy(COMPOSE, tmp_path / COMPOSE.name)
    (tmp_path / "secrets").mkdir()
    for name in ("secret_key", "webhook_secret", "verify_token", "postgres_password"):
        (tmp_path / "secrets" / name).write_text("x" * 64)
    result = subprocess.run([client, "compose", "config", "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
