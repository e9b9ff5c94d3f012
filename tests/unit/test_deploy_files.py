"""docker-compose.yml, the Dockerfiles, .env.example and docs/deploy.md stay right and in step
with the settings. No Docker engine is used: nothing is built or started here."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
import yaml

from attendance.config.settings import Settings
from attendance.frontend.settings import FrontendSettings

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def extra_requirements(extra: str) -> list[str]:
    return PYPROJECT["optional-dependencies"][extra]


def test_every_pin_in_pyproject_is_the_pin_in_constraints():
    """pyproject.toml pins the direct dependencies, constraints.txt everything: they agree."""
    pinned = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    direct = PYPROJECT["dependencies"] + [
        r for reqs in PYPROJECT["optional-dependencies"].values() for r in reqs
    ]
    checked = 0
    for req in direct:
        name, sep, version = req.partition("==")
        if not sep:
            continue
        name = re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()
        assert pinned.get(name) == version, (name, version, pinned.get(name))
        checked += 1
    assert checked > 20


COMPOSE = REPO / "docker-compose.yml"


def compose_tool() -> str:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip(
            "docker-compose is not installed (`make compose-tool` installs Debian's "
            "1.29 where apt-get and root are available): the compose file is not "
            "validated"
        )
    return tool


def compose_config(
    path: Path, *args: str, flower_auth: str | None = "ops:secret"
) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "COMPOSE_PROJECT_NAME": "attendance"}
    if flower_auth is not None:
        env["FLOWER_BASIC_AUTH"] = flower_auth
    return subprocess.run(
        [compose_tool(), "-f", str(path), *args, "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        # No engine is needed for `config`; keep the user's .env out of the interpolation.
        env=env,
    )


def test_compose_file_is_valid_for_docker_compose():
    for args in ((), ("--profile", "gpu")):
        result = compose_config(COMPOSE, *args)
        assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_flower_without_a_password():
    result = compose_config(COMPOSE, flower_auth=None)
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr
    assert load_compose()["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith(
        "${FLOWER_BASIC_AUTH:?"
    )


def test_compose_validation_really_rejects_a_bad_file(tmp_path):
    """The check above means something: the same tool refuses a broken copy, saying why."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthcheks:\n", 1))
    result = compose_config(broken)
    assert result.returncode == 1
    assert "healthcheks" in result.stderr


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_runs_the_cloud_code_path_with_local_stand_ins():
    services = load_compose()["services"]
    assert set(services) >= {
        "redis",
        "web",
        "worker",
        "worker-gpu",
        "flower",
        "frontend",
        "dynamodb",
        "gcs",
    }
    assert services["dynamodb"]["image"].startswith("amazon/dynamodb-local")
    assert services["gcs"]["image"].startswith("fsouza/fake-gcs-server")
    for name in ("web", "worker", "worker-gpu"):
        env = services[name]["environment"]
        # The URLs are valid settings and name the stand-ins.
        settings = Settings(
            _env_file=None,
            blob_store_url=env["ATTENDANCE_BLOB_STORE_URL"],
            records_url=env["ATTENDANCE_RECORDS_URL"],
        )
        assert settings.blob_store_url.startswith("gs://")
        assert "endpoint_url=http://dynamodb:8000" in settings.records_url
        assert env["STORAGE_EMULATOR_HOST"] == "http://gcs:4443"
    assert services["frontend"]["environment"]["ATTENDANCE_API_URL"] == "http://web:8080"
    assert any(r.startswith("streamlit==") for r in extra_requirements("frontend"))


def test_gpu_worker_is_a_profile_with_an_nvidia_reservation_and_cuda_tensorflow():
    services = load_compose()["services"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in services["worker"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["args"]["TENSORFLOW_EXTRAS"] == "[and-cuda]"
    assert gpu["environment"]["WORKER_QUEUES"] == "gpu"
    assert services["worker"]["environment"]["WORKER_QUEUES"] == "cpu"


@pytest.mark.parametrize("name", ["Dockerfile.web", "Dockerfile.worker"])
def test_dockerfiles_are_slim_non_root_and_checked(name):
    text = (REPO / name).read_text()
    assert re.findall(r"^FROM python:3\.12-slim\b", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and "root" not in users and "0" not in users
    assert "HEALTHCHECK" in text
    # Everything COPY'd exists.
    for source in re.findall(r"^COPY (\S+)", text, re.M):
        assert (REPO / source).exists(), source


def test_beat_has_a_healthcheck_of_its_own():
    """Beat runs from the worker image, whose HEALTHCHECK pings a worker, which beat is not
    (tests/containers sees it healthy)."""
    services = load_compose()["services"]
    beat = services["beat"]
    assert beat["image"] == services["worker"]["image"]
    test = " ".join(beat["healthcheck"]["test"])
    assert "celerybeat-schedule" in test and "ping" in test and "inspect" not in test
    # The healthcheck's freshness bound rests on beat waking at least every minute.
    assert beat["command"][beat["command"].index("--max-interval") + 1] == "60"
    assert "--schedule" in beat["command"]


@pytest.mark.parametrize("name", ["Dockerfile.web", "Dockerfile.worker"])
def test_images_let_their_user_keep_local_state(name):
    """Without the store URLs the app writes under ./var (/app/var): its user must own it."""
    text = (REPO / name).read_text()
    assert re.search(r"install -d -o app -g app /app/var\b", text)
    assert re.search(r"^WORKDIR /app$", text, re.M)


def test_worker_image_provisions_the_weights_at_build_time():
    text = (REPO / "Dockerfile.worker").read_text()
    assert re.search(r"^RUN attendance-provision ", text, re.M)
    assert "attendance-export-onnx" in text
    assert "tensorflow${TENSORFLOW_EXTRAS}" in text


def env_names() -> list[str]:
    """Every setting a deployment can change (a Literal of one value cannot be changed)."""
    names = []
    fields = {**FrontendSettings.model_fields, **Settings.model_fields}
    for name, field in fields.items():
        if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
            continue
        alias = field.validation_alias
        names.append(alias if isinstance(alias, str) else f"ATTENDANCE_{name.upper()}")
    return names


# The settings of the cloud backends and the queues, each with a line in .env.example.
DEPLOY_SETTINGS = [
    "ATTENDANCE_BLOB_STORE_URL",
    "ATTENDANCE_RECORDS_URL",
    "ATTENDANCE_DYNAMODB_CREATE_TABLES",
    "ATTENDANCE_GCS_CREATE_BUCKET",
    "ATTENDANCE_CLOUD_MAX_ATTEMPTS",
    "ATTENDANCE_AWS_RETRY_MODE",
    "ATTENDANCE_CLOUD_TIMEOUT_SECONDS",
    "ATTENDANCE_CLOUD_RETRY_DEADLINE_SECONDS",
    "ATTENDANCE_STORE_PING_TIMEOUT_SECONDS",
    "ATTENDANCE_TASK_QUEUE",
    "ATTENDANCE_GPU_WORKERS",
]


def test_deploy_settings_are_in_env_example():
    example = (REPO / ".env.example").read_text()
    assert set(DEPLOY_SETTINGS) <= set(env_names())
    assert [n for n in DEPLOY_SETTINGS if not re.search(rf"^#?{n}=", example, re.M)] == []


def test_every_setting_is_documented_in_deploy_md():
    docs = (REPO / "docs" / "deploy.md").read_text()
    missing = [n for n in env_names() if f"`{n}`" not in docs]
    assert missing == [], f"add these settings to the table in docs/deploy.md: {missing}"


def test_the_frontend_image_has_the_apps_streamlit_settings():
    """Without .streamlit/config.toml the image would show Streamlit's developer chrome."""
    text = (REPO / "Dockerfile.web").read_text()
    frontend = text[text.index("AS frontend") : text.index("AS web")]
    assert re.search(r"^COPY \.streamlit/ \.streamlit/$", frontend, re.M)
