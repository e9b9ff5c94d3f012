"""Shared fixtures: real Redis, real stores on disk, a real Celery worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import redis_db, tokens

REPO = Path(__file__).resolve().parents[1]
# The DeepFace project's MIT test photos, kept in the repository (tests/data/faces/README.md).
FACES_DIR = Path(os.environ.get("ATTENDANCE_FACES_DIR", REPO / "tests" / "data" / "faces"))
CELEB_DIR = Path(
    os.environ.get("ATTENDANCE_CELEB_DIR", REPO / "var" / "datasets" / "5-celebrity-faces")
)
DEEPFACE_HOME = Path(os.environ.get("ATTENDANCE_DEEPFACE_HOME", REPO / "var" / "deepface"))
# Each worker-backed suite gets its own Redis database so queues never cross (tests.redis_db).
E2E_REDIS_DB = 14
redis_url_for = redis_db.url_for


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not (FACES_DIR / "img2.jpg").is_file():
        pytest.fail(f"face photos not found in {FACES_DIR} (ATTENDANCE_FACES_DIR)")
    return FACES_DIR


@pytest.fixture(scope="session")
def celeb_dir() -> Path:
    if not (CELEB_DIR / "train").is_dir():
        pytest.fail(f"5 Celebrity Faces not found in {CELEB_DIR}; run `make provision`")
    return CELEB_DIR


@dataclass
class Stack:
    settings: object
    client: object
    env: dict
    root: Path
    worker: subprocess.Popen | None = None

    def start_worker(
        self, name: str = "w1", concurrency: int = 1, queues: str = "cpu"
    ) -> subprocess.Popen:
        log = open(self.root / f"worker-{name}.log", "ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "attendance.worker.celery_app",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "-n",
                f"{name}@%h",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return proc

    def wait_for_job(self, job_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = self.client.get(f"/api/v1/jobs/{job_id}")
            assert resp.status_code == 200, resp.get_json()
            job = resp.get_json()
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.2)
        logs = "\n".join(
            f"--- {path.name}\n" + path.read_text(errors="replace")[-4000:]
            for path in sorted(self.root.glob("worker-*.log"))
        )
        raise AssertionError(f"job {job_id} did not finish in {timeout}s; worker logs:\n{logs}")


def make_stack(
    tmp: Path,
    db: int,
    redis_url: str | None = None,
    *,
    blob_store_url: str | None = None,
    records_url: str | None = None,
    extra_env: dict | None = None,
    **overrides,
) -> Stack:
    """``overrides`` are further settings (e.g. gcs_create_bucket=True), given to the in-process
    app and, as ATTENDANCE_* variables, to the workers; ``extra_env`` goes to the workers only
    (e.g. an emulator's address, which the in-process clients read from os.environ)."""
    from attendance.config.settings import Settings
    from attendance.web.app import create_app

    url = redis_url or redis_db.url_for(db)
    redis_db.flush(url)
    env_settings = {
        "REDIS_URL": url,
        "ATTENDANCE_BLOB_STORE_URL": blob_store_url or f"file://{tmp}/store",
        "ATTENDANCE_RECORDS_URL": records_url or f"sqlite:///{tmp}/attendance.db",
        "ATTENDANCE_DEEPFACE_HOME": str(DEEPFACE_HOME),
        **{f"ATTENDANCE_{k.upper()}": str(v) for k, v in overrides.items()},
    }
    env = {**os.environ, **(extra_env or {}), **env_settings, "TF_CPP_MIN_LOG_LEVEL": "2"}
    settings = Settings(
        REDIS_URL=url,
        blob_store_url=env_settings["ATTENDANCE_BLOB_STORE_URL"],
        records_url=env_settings["ATTENDANCE_RECORDS_URL"],
        deepface_home=DEEPFACE_HOME,
        api_tokens=tokens.TOKENS_JSON,
        api_tokens_file=tmp / "no-tokens-file.json",
        **overrides,
    )
    app = create_app(settings)
    app.testing = True
    return Stack(settings=settings, client=tokens.as_admin(app.test_client()), env=env, root=tmp)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    """The API (Flask test client) and one real Celery worker process on a private Redis DB."""
    s = make_stack(tmp_path_factory.mktemp("stack"), E2E_REDIS_DB)
    s.worker = s.start_worker()
    yield s
    s.worker.terminate()
    try:
        s.worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        s.worker.kill()
    redis_db.flush(redis_db.url_for(E2E_REDIS_DB))


# --- the cloud backends, on emulators the tests start themselves -------------------------------

CLOUD_REDIS_DB = 11


@pytest.fixture(scope="session")
def emulators():
    """moto's DynamoDB server and gcp-storage-emulator on loopback ports, for the whole session.

    Their environment (STORAGE_EMULATOR_HOST, AWS test credentials) is put in os.environ for
    the in-process clients and is in ``emulators.env`` for worker processes."""
    from tests.emulators import start_emulators

    emu = start_emulators()
    patch = pytest.MonkeyPatch()
    for key, value in emu.env.items():
        patch.setenv(key, value)
    yield emu
    patch.undo()
    emu.gcs.stop()
    emu.dynamodb.stop()


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_cloud_stack(
    tmp: Path, db: int, emulators, *, bucket: str, table_prefix: str, **overrides
) -> Stack:
    """make_stack on gs:// and dynamodb:// URLs served by the emulators."""
    overrides.setdefault("gcs_create_bucket", True)
    return make_stack(
        tmp,
        db,
        blob_store_url=emulators.blob_url(bucket, "attendance"),
        records_url=emulators.records_url(table_prefix),
        extra_env=emulators.env,
        **overrides,
    )


@pytest.fixture(scope="session")
def cloud_stack(tmp_path_factory, emulators) -> Stack:
    """The stack on the cloud backends (GCS and DynamoDB, emulated over HTTP): the API in this
    process, one real worker process ("c1", consuming the queues cpu and c1)."""
    s = make_cloud_stack(
        tmp_path_factory.mktemp("cloud-stack"),
        CLOUD_REDIS_DB,
        emulators,
        bucket="attendance-e2e",
        table_prefix="e2e",
    )
    s.worker = s.start_worker("c1", queues="cpu,c1")
    yield s
    stop_process(s.worker)
    redis_db.flush(redis_db.url_for(CLOUD_REDIS_DB))


@pytest.fixture(scope="module")
def api_url(stack):
    """The real API over the stack's settings, on a free port, for the module's tests."""
    from werkzeug.serving import make_server

    from attendance.web.app import create_app

    server = make_server("127.0.0.1", 0, create_app(stack.settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
