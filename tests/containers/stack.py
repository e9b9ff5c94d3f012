"""The Docker side of tests/containers: the engine, the images, and the compose stack.

What cannot be pulled (no registry reachable) is made here: the `python:3.12-slim` base from
Debian's packages (mmdebstrap + `docker import`), and stand-ins for the service images
docker-compose.yml names (tests/containers/standins). The project's Dockerfiles are built
unchanged with the legacy builder, and the stack runs docker-compose.yml with two changes only:
Docker picks the published host ports, and the images that could not be pulled are replaced
by their stand-ins.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STATE = REPO / "var" / "containers"

BASE_IMAGE = "python:3.12-slim"
# Bumped whenever the recipe of the locally made base changes, so that it is made again.
BASE_RECIPE = "3"
BASE_LABEL = "attendance.test-base"
DEBIAN_SUITE = "trixie"
STANDIN_LABEL = "attendance.test-standin"

# Images of docker-compose.yml that the project does not build, and the stand-in target of
# tests/containers/standins/Dockerfile that replaces each.
STANDINS = {"redis": "redis", "dynamodb": "dynamodb", "gcs": "gcs", "flower": "flower"}

PULL_TIMEOUT = 60
BUILD_TIMEOUT = 3600


class Unavailable(Exception):
    """No Docker engine can run here; the message says why."""


def log(message: str) -> None:
    print(f"[containers] {message}", flush=True)


def docker_env() -> dict[str, str]:
    env = dict(os.environ)
    # The legacy builder: BuildKit needs buildx (not packaged by Debian) and would try to pull
    # the `# syntax=` frontend.
    env["DOCKER_BUILDKIT"] = "0"
    return env


def run(
    args: Sequence[str],
    *,
    timeout: float = 300,
    check: bool = True,
    capture: bool = True,
    input: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args),
        capture_output=capture,
        text=True,
        timeout=timeout,
        input=input,
        cwd=cwd,
        env=env or docker_env(),
    )
    if check and result.returncode != 0:
        out = (result.stdout or "")[-3000:] + (result.stderr or "")[-3000:]
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{out}")
    return result


# ---------------------------------------------------------------------------------------------
# The engine


def engine_answers() -> bool:
    try:
        return run(["docker", "info"], check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_engine() -> subprocess.Popen | None:
    """A Docker engine answers; the dockerd started here when none did (else None)."""
    if shutil.which("docker") is None:
        raise Unavailable("the docker CLI is not installed (`make test-containers` installs it)")
    if shutil.which("docker-compose") is None:
        raise Unavailable("docker-compose is not installed (`make test-containers` installs it)")
    if engine_answers():
        return None
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise Unavailable("no Docker engine runs and dockerd is not installed")
    if os.geteuid() != 0:
        raise Unavailable("no Docker engine runs and starting dockerd needs root")
    STATE.mkdir(parents=True, exist_ok=True)
    log_path = STATE / "dockerd.log"
    log(f"starting dockerd (log: {log_path})")
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [dockerd],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine_answers():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(1)
    stop_engine(proc)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise Unavailable(f"dockerd could not start here:\n{tail}")


def stop_engine(proc: subprocess.Popen) -> None:
    """Stop a dockerd started by ensure_engine (its images and build cache stay on disk)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# Images


def image_labels(image: str) -> dict[str, str] | None:
    """The image's labels ({} for none), or None when the engine does not have it."""
    result = run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
        check=False,
    )
    if result.returncode != 0:
        return None
    return json.loads(result.stdout or "null") or {}


def try_pull(image: str) -> bool:
    try:
        result = run(["docker", "pull", image], check=False, timeout=PULL_TIMEOUT)
    except subprocess.TimeoutExpired:
        log(f"pulling {image} timed out")
        return False
    if result.returncode != 0:
        log(f"cannot pull {image}: {(result.stderr or '').strip().splitlines()[-1:]}")
    return result.returncode == 0


def host_ca_bundle() -> Path:
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return Path("/etc/ssl/certs/ca-certificates.crt")


def host_pip_config() -> dict[str, str]:
    """The host's pip index settings that mean something inside an image (no local paths)."""
    result = run(
        [sys.executable, "-m", "pip", "config", "list"],
        check=False,
        env=dict(os.environ),
    )
    wanted = {"index-url", "extra-index-url", "trusted-host", "default-timeout", "retries"}
    config: dict[str, str] = {}
    from_env: set[str] = set()
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        value = value.strip().strip("'\"")
        if name not in wanted or (name in from_env and not key.startswith(":env:")):
            continue
        if "index-url" in name:
            value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        if value:
            config[name] = value
            if key.startswith(":env:"):  # PIP_* variables win over the config files
                from_env.add(name)
    return config


CA_IN_IMAGE = "/usr/local/share/host-ca/ca-bundle.crt"


def base_pip_conf() -> str:
    lines = ["[global]", f"cert = {CA_IN_IMAGE}"]
    lines += [f"{k} = {v}" for k, v in sorted(host_pip_config().items())]
    return "\n".join(lines) + "\n"


def base_fingerprint() -> str:
    """What the made base depends on: the recipe, the host's pip settings and CA bundle."""
    digest = hashlib.sha256(f"{BASE_RECIPE}\n{DEBIAN_SUITE}\n{base_pip_conf()}".encode())
    digest.update(host_ca_bundle().read_bytes())
    return digest.hexdigest()[:16]


def make_base_image() -> None:
    """Debian trixie (the official image's Debian) with its Python (3.13: no Debian has 3.12)
    as `python:3.12-slim`: python and pip at /usr/local like the official image, apt working,
    and the host's CA bundle and pip index settings, so that pip inside reaches the package
    index the host reaches. (Bookworm's Python, 3.11.2, is older than some pins allow.)"""
    if shutil.which("mmdebstrap") is None:
        raise Unavailable(
            f"{BASE_IMAGE} cannot be pulled and mmdebstrap (to make it) is not installed"
        )
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "pip.conf"
        conf.write_text(base_pip_conf())
        tarball = Path(tmp) / "base.tar"
        log(f"making {BASE_IMAGE} with mmdebstrap (Debian {DEBIAN_SUITE})")
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                '--customize-hook=chroot "$1" python3 -m venv /usr/local',
                f'--customize-hook=mkdir -p "$1"{Path(CA_IN_IMAGE).parent}',
                f"--customize-hook=upload {host_ca_bundle()} {CA_IN_IMAGE}",
                f"--customize-hook=upload {conf} /etc/pip.conf",
                DEBIAN_SUITE,
                str(tarball),
                "http://deb.debian.org/debian",
            ],
            timeout=900,
        )
        changes = [
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            f"ENV PIP_CERT={CA_IN_IMAGE}",
            f"ENV REQUESTS_CA_BUNDLE={CA_IN_IMAGE}",
            f"ENV SSL_CERT_FILE={CA_IN_IMAGE}",
            f"LABEL {BASE_LABEL}={base_fingerprint()}",
            'CMD ["python3"]',
        ]
        args = ["docker", "import"]
        for change in changes:
            args += ["--change", change]
        run([*args, str(tarball), BASE_IMAGE], timeout=600)


def ensure_base_image() -> str:
    """`python:3.12-slim`: pulled when a registry answers, else made (once) from Debian."""
    if try_pull(BASE_IMAGE):
        return "pulled"
    labels = image_labels(BASE_IMAGE)
    if labels is not None and BASE_LABEL not in labels:
        return "pulled earlier"
    if labels is not None and labels[BASE_LABEL] == base_fingerprint():
        return "made earlier"
    make_base_image()
    return "made"


def image_id(image: str) -> str | None:
    result = run(["docker", "image", "inspect", "--format", "{{.Id}}", image], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def build(tag: str, dockerfile: Path, context: Path, *args: str) -> float:
    started = time.monotonic()
    before = image_id(tag)
    log(f"building {tag} ({dockerfile.name} {' '.join(args)})")
    run(
        ["docker", "build", "--force-rm", "-f", str(dockerfile), "-t", tag, *args, str(context)],
        timeout=BUILD_TIMEOUT,
    )
    if before and before != image_id(tag):
        # The image this tag named before, so that rebuilds do not pile up on the disk (kept
        # when a container or another tag still uses it).
        run(["docker", "rmi", before], check=False)
    took = time.monotonic() - started
    log(f"built {tag} in {took:.0f} s")
    return took


def ensure_standins(images: dict[str, str]) -> dict[str, str]:
    """For each service whose image cannot be pulled, its stand-in's tag."""
    replaced: dict[str, str] = {}
    for service, image in images.items():
        labels = image_labels(image)
        if (labels is not None and STANDIN_LABEL not in labels) or try_pull(image):
            continue
        replaced[service] = f"attendance-standin-{STANDINS[service]}:local"
    if replaced:
        with tempfile.TemporaryDirectory() as tmp:
            context = Path(tmp)
            for item in (HERE / "standins").iterdir():
                shutil.copy2(item, context / item.name)
            shutil.copy2(REPO / "constraints.txt", context / "constraints.txt")
            for service, tag in replaced.items():
                build(
                    tag,
                    context / "Dockerfile",
                    context,
                    "--target",
                    STANDINS[service],
                    "--label",
                    f"{STANDIN_LABEL}={service}",
                )
    return replaced


# ---------------------------------------------------------------------------------------------
# The compose stack


def load_compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def project_images(compose: dict) -> list[tuple[str, str, list[str]]]:
    """(tag, Dockerfile, build arguments) of every image docker-compose.yml builds, the GPU
    worker's included."""
    images = []
    for service in compose["services"].values():
        build_spec = service.get("build")
        if not build_spec:
            continue
        args = ["--target", build_spec["target"]] if build_spec.get("target") else []
        for name, value in (build_spec.get("args") or {}).items():
            args += ["--build-arg", f"{name}={value}"]
        images.append((service["image"], build_spec["dockerfile"], args))
    return images


def derived_compose(compose: dict, standins: dict[str, str]) -> dict:
    """docker-compose.yml with Docker-chosen host ports (nothing here collides with what runs
    on the machine) and the stand-ins' images."""
    for name, service in compose["services"].items():
        if "ports" in service:
            service["ports"] = [f"127.0.0.1::{str(p).rsplit(':', 1)[-1]}" for p in service["ports"]]
        if name in standins:
            service["image"] = standins[name]
    return compose


@dataclass
class Stack:
    project: str
    compose_file: Path
    env: dict[str, str]
    # Each service's state once the stack has settled (see test_containers.py).
    settled: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600, check: bool = True):
        return run(
            [
                "docker-compose",
                "--project-name",
                self.project,
                "--project-directory",
                str(REPO),
                "--env-file",
                str(self.compose_file.with_name("empty.env")),
                "-f",
                str(self.compose_file),
                *args,
            ],
            timeout=timeout,
            check=check,
            env=self.env,
        )

    def containers(self) -> dict[str, dict]:
        ids = self.compose("ps", "-q").stdout.split()
        if not ids:
            return {}
        out = run(["docker", "inspect", *ids]).stdout
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in json.loads(out)}

    def port(self, service: str, container_port: int) -> int:
        out = self.compose("port", service, str(container_port)).stdout.strip()
        return int(out.rsplit(":", 1)[-1])

    def logs(self, *services: str, tail: int = 80) -> str:
        result = self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False)
        return result.stdout + result.stderr


def state_of(container: dict) -> str:
    """healthy / unhealthy / starting for a running container with a healthcheck, else its
    status (an exited container keeps the health it last had)."""
    state = container["State"]
    if state["Status"] != "running" or not state.get("Health"):
        return state["Status"]
    return state["Health"]["Status"]


@contextmanager
def compose_stack(project: str, standins: dict[str, str], env: dict[str, str]) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docker-compose.yml"
        path.write_text(yaml.safe_dump(derived_compose(load_compose(), standins), sort_keys=False))
        (Path(tmp) / "empty.env").write_text("")
        full_env = {**docker_env(), **env, "COMPOSE_PROJECT_NAME": project}
        stack = Stack(project, path, full_env)
        stack.compose("down", "-v", "--remove-orphans", check=False)
        try:
            stack.compose("up", "-d", "--no-build")
            yield stack
        finally:
            stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
