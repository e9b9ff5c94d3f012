"""The images built from Dockerfile.web and Dockerfile.worker, and docker-compose.yml, run for
real: every service healthy, a student enrolled and recognised through the web container's
API by the worker container's FaceNet, the records in the DynamoDB stand-in and the gallery in
the GCS stand-in. `make test-containers` runs this (never `make test`: see pytest.ini);
docs/deploy.md says what it proves.

Skipped, saying why, where no Docker engine can run.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from attendance.domain.auth import hash_token
from tests.consent import CONSENT_FORM
from tests.containers import stack as docker

# Building the images from nothing takes several minutes on two cores; TensorFlow's CUDA
# libraries for the GPU image take longer still.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
PROJECT = "attendance-containers-test"
LONE_WEB = f"{PROJECT}-web-alone"
ADMIN = secrets.token_urlsafe(24)
CLASS = "room-c"
DATE = "2026-11-05"
# The stand-ins' settings in docker-compose.yml, as seen from the host.
TABLE_PREFIX = "attendance"
BUCKET, BLOB_PREFIX = "attendance-local", "school"
# How long the stack may take to become healthy: the worker's first healthcheck runs 60 s
# after it starts, and a failed one is tried again after 60 s more.
HEALTHY_WITHIN = 420
# How long readyz may stay not-ready once every service is healthy.
READY_WITHIN = 90


@pytest.fixture(scope="module")
def engine():
    """A Docker engine; one started for these tests is stopped after them."""
    try:
        started = docker.ensure_engine()
    except docker.Unavailable as exc:
        pytest.skip(f"no Docker engine can run here: {exc}")
    yield
    if started is not None:
        docker.stop_engine(started)


@pytest.fixture(scope="module")
def images(engine) -> dict[str, str]:
    """Every image the stack uses, built (or pulled) once; {service: stand-in tag}."""
    started = time.monotonic()
    try:
        base = docker.ensure_base_image()
    except docker.Unavailable as exc:
        pytest.skip(f"the images cannot be built here: {exc}")
    docker.log(f"{docker.BASE_IMAGE}: {base}")
    compose = docker.load_compose()
    standins = docker.ensure_standins(
        {name: compose["services"][name]["image"] for name in docker.STANDINS}
    )
    for tag, dockerfile, args in docker.project_images(compose):
        if tag not in gpu_images(compose):
            docker.build(tag, docker.REPO / dockerfile, docker.REPO, *args)
    docker.log(f"images ready in {time.monotonic() - started:.0f} s; stand-ins: {standins}")
    return standins


def gpu_images(compose: dict) -> set[str]:
    """The images of the `gpu` profile: built, but not run here (no GPU)."""
    return {s["image"] for s in compose["services"].values() if "gpu" in s.get("profiles", [])}


def wait_for_http(url: str, timeout: float, **kwargs) -> requests.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            resp = requests.get(url, timeout=5, **kwargs)
            if resp.status_code < 500:
                return resp
            last = resp.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{url} did not answer in {timeout:g} s: {last}")


def container_state(name: str) -> str:
    out = docker.run(["docker", "inspect", name]).stdout
    return docker.state_of(json.loads(out)[0])


def test_web_image_boots_alone_without_cloud_settings(images):
    """No store URLs: the local stores under /app/var, owned by the image's non-root user."""
    docker.run(["docker", "rm", "-f", "-v", LONE_WEB], check=False)
    # The image's own healthcheck, probed every 2 s instead of 30 s.
    docker.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            LONE_WEB,
            "--health-interval",
            "2s",
            "-p",
            "127.0.0.1::8080",
            "attendance-web:local",
        ]
    )
    try:
        port = docker.run(["docker", "port", LONE_WEB, "8080"]).stdout.split()[0].rsplit(":")[-1]
        base = f"http://127.0.0.1:{port}"
        try:
            assert wait_for_http(f"{base}/healthz", 90).status_code == 200
        except AssertionError:
            logs = docker.run(["docker", "logs", "--tail", "60", LONE_WEB], check=False)
            raise AssertionError(f"the web container did not boot:\n{logs.stderr}") from None
        ready = requests.get(f"{base}/readyz", timeout=30).json()
        # No Redis here, but both local stores work.
        assert ready["checks"]["blob_store"] == "ok", ready
        assert ready["checks"]["records"] == "ok", ready
        deadline = time.monotonic() + 60
        while container_state(LONE_WEB) == "starting" and time.monotonic() < deadline:
            time.sleep(1)
        state = container_state(LONE_WEB)
        if state != "healthy":
            logs = docker.run(["docker", "logs", "--tail", "80", LONE_WEB], check=False)
            raise AssertionError(f"the web container is {state}:\n{logs.stdout}{logs.stderr}")
    finally:
        docker.run(["docker", "rm", "-f", "-v", LONE_WEB], check=False)


@pytest.fixture(scope="module")
def stack(images):
    env = {
        "FLOWER_BASIC_AUTH": f"ops:{secrets.token_hex(8)}",
        "ATTENDANCE_API_TOKENS": json.dumps(
            [{"name": "admin", "role": "admin", "sha256": hash_token(ADMIN)}]
        ),
        "ATTENDANCE_API_TOKEN": ADMIN,
    }
    with docker.compose_stack(PROJECT, images, env) as running:
        running.settled = wait_until_settled(running)
        yield running


def wait_until_settled(running: docker.Stack) -> dict[str, str]:
    """Each service's state once none is starting any more (or the time is up)."""
    deadline = time.monotonic() + HEALTHY_WITHIN
    while True:
        states = {name: docker.state_of(c) for name, c in running.containers().items()}
        if time.monotonic() > deadline or "starting" not in states.values():
            docker.log(f"services: {states}")
            return states
        time.sleep(3)


def test_every_service_is_healthy(stack):
    compose = docker.load_compose()
    expected = {n for n, s in compose["services"].items() if not s.get("profiles")}
    assert set(stack.settled) == expected
    bad = {name: state for name, state in stack.settled.items() if state != want(name)}
    assert not bad, f"{bad}\n{stack.logs(*bad)}"


# No healthcheck in docker-compose.yml or in their real images: these can only be running.
NO_HEALTHCHECK = {"dynamodb", "gcs", "flower"}


def want(service: str) -> str:
    """healthy for a service with a healthcheck (its image's or compose's), else running."""
    return "running" if service in NO_HEALTHCHECK else "healthy"


def test_beat_is_healthy_by_its_own_healthcheck(stack):
    """Beat runs from the worker image, whose healthcheck pings a worker, which beat is not:
    that check fails in beat's container, compose's own passes, and fails once the schedule
    file goes stale."""
    beat = stack.containers()["beat"]
    assert docker.state_of(beat) == "healthy", stack.logs("beat")
    image_check = json.loads(
        docker.run(
            [
                "docker",
                "image",
                "inspect",
                "--format",
                "{{json .Config.Healthcheck.Test}}",
                beat["Config"]["Image"],
            ]
        ).stdout
    )
    assert image_check[0] == "CMD-SHELL" and "inspect ping" in image_check[1]
    name = beat["Name"].lstrip("/")
    assert in_container(name, "sh", "-c", image_check[1]).returncode != 0

    own_check = beat["Config"]["Healthcheck"]["Test"]
    assert own_check[0] == "CMD" and own_check != image_check
    assert in_container(name, *own_check[1:]).returncode == 0
    stale = "touch -d '-10 minutes' /tmp/celerybeat-schedule*"
    try:
        docker.run(["docker", "exec", name, "sh", "-c", stale])
        assert in_container(name, *own_check[1:]).returncode == 1
    finally:
        docker.run(["docker", "exec", name, "sh", "-c", "touch /tmp/celerybeat-schedule*"])


def in_container(name: str, *command: str):
    return docker.run(["docker", "exec", name, *command], check=False, timeout=60)


@dataclass
class Api:
    """The web container's API, as the admin."""

    base: str
    running: docker.Stack
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.headers["Authorization"] = f"Bearer {ADMIN}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(f"{self.base}{path}", timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.session.post(f"{self.base}{path}", timeout=60, **kwargs)

    def wait_for_job(self, job_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        job: dict = {}
        while time.monotonic() < deadline:
            job = self.get(f"/api/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish: {job}\n{self.running.logs('worker')}")


@pytest.fixture(scope="module")
def api(stack) -> Api:
    return Api(f"http://127.0.0.1:{stack.port('web', 8080)}", stack)


def photos(*names: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("photos", (n, (FACES / n).read_bytes(), "image/jpeg")) for n in names]


@pytest.fixture(scope="module")
def recognised(api):
    """Angelina Jolie enrolled from two photos, then recognised in a third."""
    resp = api.post(
        "/api/v1/students",
        data={"student_id": "jolie", "name": "Angelina Jolie", "class_id": CLASS, **CONSENT_FORM},
        files=photos("img2.jpg", "img4.jpg"),
    )
    assert resp.status_code == 202, resp.text
    enrolled = api.wait_for_job(resp.json()["job_id"])
    resp = api.post(
        "/api/v1/recognitions", data={"class_id": CLASS, "date": DATE}, files=photos("img5.jpg")
    )
    assert resp.status_code == 202, resp.text
    return enrolled, api.wait_for_job(resp.json()["job_id"])


def test_readyz_sees_redis_both_stores_and_a_worker(api):
    # A readiness probe is asked again until it passes: the stand-ins answer their first
    # requests slowly (moto loads a service's backend on its first call) while the worker's
    # start-up takes the CPU, and readyz gives each store one try with short timeouts.
    # A refused or dropped connection is a failed probe too, asked again: the session's kept-alive
    # connection can be closed by gunicorn (after its keep-alive seconds) just as it is reused.
    deadline = time.monotonic() + READY_WITHIN
    while True:
        try:
            resp = api.get("/readyz")
            if resp.status_code == 200:
                break
            last = f"{resp.status_code}: {resp.text}"
        except requests.RequestException as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"readyz: {last}\n{api.running.logs('web')}")
        time.sleep(1)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"redis", "blob_store", "records", "workers"}
    assert [w["queues"] for w in body["workers"]] == [["cpu"]]


def test_enroll_and_take_attendance_through_the_api(api, recognised):
    enrolled, recognition = recognised
    assert enrolled["state"] == "succeeded", enrolled
    assert recognition["state"] == "succeeded", recognition
    assert recognition["result"]["present"] == ["jolie"]
    records = api.get("/api/v1/attendance", params={"class_id": CLASS, "date": DATE}).json()[
        "records"
    ]
    assert [(r["student_id"], r["name"]) for r in records] == [("jolie", "Angelina Jolie")]


def test_records_are_in_the_dynamodb_stand_in(stack, recognised):
    dynamodb = dynamodb_client(stack)
    tables = dynamodb.list_tables()["TableNames"]
    assert {f"{TABLE_PREFIX}-students", f"{TABLE_PREFIX}-attendance"} <= set(tables)
    student = dynamodb.get_item(
        TableName=f"{TABLE_PREFIX}-students", Key={"student_id": {"S": "jolie"}}
    )["Item"]
    assert student["name"] == {"S": "Angelina Jolie"}
    marks = dynamodb.query(
        TableName=f"{TABLE_PREFIX}-attendance",
        KeyConditionExpression="class_id = :c",
        ExpressionAttributeValues={":c": {"S": CLASS}},
    )["Items"]
    assert [(m["student_id"]["S"], m["date"]["S"]) for m in marks] == [("jolie", DATE)]


def test_gallery_is_in_the_gcs_stand_in(stack, recognised):
    pointer = dynamodb_client(stack).get_item(
        TableName=f"{TABLE_PREFIX}-gallery", Key={"scope": {"S": "global"}}
    )["Item"]
    client = storage.Client(
        project="attendance-local",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{stack.port('gcs', 4443)}"},
    )
    names = [b.name for b in client.list_blobs(BUCKET, prefix=f"{BLOB_PREFIX}/gallery/")]
    assert f"{BLOB_PREFIX}/{pointer['manifest_key']['S']}" in names, (pointer, names)
    assert any(n.startswith(f"{BLOB_PREFIX}/gallery/segments/") for n in names), names
    uploads = list(client.list_blobs(BUCKET, prefix=f"{BLOB_PREFIX}/uploads/"))
    assert len(uploads) == 3  # two enrollment photos, one class photo


def test_flower_wants_its_password(stack):
    base = f"http://127.0.0.1:{stack.port('flower', 5555)}"
    assert wait_for_http(base, 60).status_code == 401
    user, password = stack.env["FLOWER_BASIC_AUTH"].split(":", 1)
    assert requests.get(base, auth=(user, password), timeout=10).status_code == 200


def dynamodb_client(running: docker.Stack):
    return boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{running.port('dynamodb', 8000)}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_gpu_worker_image_builds(images):
    """No GPU here to run it: its image builds, with TensorFlow's CUDA libraries in it."""
    compose = docker.load_compose()
    assert gpu_images(compose)
    for tag, dockerfile, args in docker.project_images(compose):
        if tag in gpu_images(compose):
            docker.build(tag, docker.REPO / dockerfile, docker.REPO, *args)
            listed = docker.run(["docker", "run", "--rm", tag, "pip", "list"]).stdout
            assert "tensorflow " in listed and "nvidia-cudnn-cu12" in listed, listed
