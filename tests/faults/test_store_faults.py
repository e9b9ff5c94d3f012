"""Faults of the stores' disks and of gunicorn, injected into real processes.

* The SQLite database locked past its busy timeout, or read-only for a while, while jobs run:
  the jobs are retried and succeed once it is writable again; the API answers 503 with the
  reason meanwhile and /readyz says so (its probe writes).
* The filesystem under the blob store full: an upload gets 507 storage_full and stores nothing,
  a job that meets it fails saying so, /readyz says "storage full", and all is well again once
  space is freed. SQLite on a full disk: StorageFull, nothing already stored lost.
* gunicorn's own answer to a request cut short (SIGQUIT, its --timeout) is the API's JSON.

The web is gunicorn (the Procfile's worker class), the worker a Celery process; the read-only
and full disks are real mounts (a tmpfs, a read-only bind mount), made in a mount namespace of
this test process's own, which its children share and which goes when it ends. Those tests
skip where the process may not mount (not root).

After every fault each accepted job ends, succeeded or failed with a reason, within the bound
the README states for the settings in use (``job_bound``), and the attendance rows are exactly
those expected: none duplicated, none lost.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from attendance.stores.records import open_records
from tests import redis_db, tokens
from tests.conftest import Stack, make_stack, stop_process
from tests.consent import CONSENT_FORM
from tests.emulators import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DB = 13  # the fault suites' Redis database (never two at once)
SYNC_WORKER = "attendance.web.gunicorn_workers.SyncJsonWorker"
THREAD_WORKER = "attendance.web.gunicorn_workers.ThreadJsonWorker"
# The faults' settings: short waits so that a fault outlasts several of them in seconds.
FAULT_SETTINGS = {
    "sqlite_busy_timeout_seconds": 1,
    "task_retry_backoff_seconds": 1,
    "store_ping_timeout_seconds": 0.5,
}
# The longest a one-photo job's own work takes here (detection, embedding, writes), generously.
RUN_SECONDS = 30


def job_bound(settings) -> float:
    """The README's bound on a job's life from its first start: task_max_attempts runs, each
    its own work plus at most the busy timeout, and the backoff between them."""
    n = settings.task_max_attempts
    backoff = settings.task_retry_backoff_seconds * (2 ** (n - 1) - 1)
    return n * (RUN_SECONDS + settings.sqlite_busy_timeout_seconds) + backoff


# --- real processes -------------------------------------------------------------------------------


@dataclass
class Web:
    proc: subprocess.Popen
    base: str
    log: Path

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        headers = {**tokens.bearer(tokens.ADMIN), **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def wait_for_job(self, job_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/api/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout:g} s: {job}")


def start_web(
    root: Path,
    env: dict,
    *,
    worker_class: str = SYNC_WORKER,
    args: tuple[str, ...] = (),
    wait: bool = True,
) -> Web:
    """The API under gunicorn, as the Procfile runs it, on a free loopback port."""
    port = free_port()
    log = root / f"gunicorn-{port}.log"
    env = {
        **env,
        "ATTENDANCE_API_TOKENS": tokens.TOKENS_JSON,
        "ATTENDANCE_API_TOKENS_FILE": str(root / "no-tokens-file.json"),
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--worker-class",
                worker_class,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                *args,
                "attendance.web.app:create_app()",
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    web = Web(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while wait:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if requests.get(web.base + "/healthz", timeout=5).status_code == 200:
                break
        except (requests.ConnectionError, requests.Timeout):
            pass
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    return web


@pytest.fixture
def processes():
    """Every process a test starts here, stopped after it."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in reversed(started):
        if proc.poll() is None:
            stop_process(proc)
    redis_db.flush(redis_db.url_for(DB))


def fault_stack(root: Path, processes: list, **overrides) -> tuple[Stack, Web]:
    """A worker process and the web under gunicorn over the same stores, FAULT_SETTINGS on."""
    stack = make_stack(root, DB, **{**FAULT_SETTINGS, **overrides})
    stack.worker = stack.start_worker()
    processes.append(stack.worker)
    web = start_web(root, stack.env)
    processes.append(web.proc)
    return stack, web


def photo_files(faces_dir: Path, *names: str) -> list:
    return [("photos", (n, (faces_dir / n).read_bytes(), "image/jpeg")) for n in names]


def enroll_jolie(web: Web, faces_dir: Path, class_id: str) -> None:
    resp = web.request(
        "POST",
        "/api/v1/students",
        data={
            "student_id": "jolie",
            "name": "Angelina Jolie",
            "class_id": class_id,
            **CONSENT_FORM,
        },
        files=photo_files(faces_dir, "img2.jpg", "img4.jpg"),
    )
    assert resp.status_code == 202, resp.text
    job = web.wait_for_job(resp.json()["job_id"], 300)
    assert job["state"] == "succeeded", job


def recognise(web: Web, faces_dir: Path, class_id: str, date: str) -> requests.Response:
    return web.request(
        "POST",
        "/api/v1/recognitions",
        data={"class_id": class_id, "date": date},
        files=photo_files(faces_dir, "img5.jpg"),
    )


def attendance_rows(web: Web, class_id: str) -> list[tuple[str, str]]:
    resp = web.get(f"/api/v1/attendance?class_id={class_id}")
    assert resp.status_code == 200, resp.text
    return sorted((r["date"], r["student_id"]) for r in resp.json()["records"])


def attempts(stack: Stack, job_id: str) -> int:
    raw = redis_db.client(stack.settings.redis_url).get(f"attendance:job:{job_id}:attempts")
    return int(raw or 0)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.1)


# --- mounts, in a namespace of this process's own ---------------------------------------------------

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2


class Mounts:
    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.mounted: list[Path] = []

    def _call(self, what: str, result: int) -> None:
        if result != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"{what}: {os.strerror(code)}")

    def unshare(self) -> None:
        """A mount namespace of this process's own, whose mounts are seen by its children
        only; it and its mounts go when this process ends, however it ends."""
        self._call("unshare(CLONE_NEWNS)", self.libc.unshare(_CLONE_NEWNS))
        self._call(
            "mount --make-rprivate /",
            self.libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None),
        )

    def tmpfs(self, path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self._call(
            f"mount tmpfs {path}",
            self.libc.mount(b"tmpfs", bytes(path), b"tmpfs", 0, f"size={size}".encode()),
        )
        self.mounted.append(path)
        return path

    def read_only(self, path: Path) -> None:
        """``path`` (a file) read-only until ``umount``: its folder stays writable."""
        self._call(f"bind {path}", self.libc.mount(bytes(path), bytes(path), None, _MS_BIND, None))
        self.mounted.append(path)
        self._call(
            f"remount {path} read-only",
            self.libc.mount(None, bytes(path), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None),
        )

    def umount(self, path: Path) -> None:
        # Detached at once; a file still open through it keeps it until closed.
        self._call(f"umount {path}", self.libc.umount2(bytes(path), _MNT_DETACH))
        self.mounted.remove(path)


@pytest.fixture(scope="module")
def mounts():
    m = Mounts()
    try:
        m.unshare()
    except OSError as exc:
        pytest.skip(f"needs to mount filesystems (root, CAP_SYS_ADMIN): {exc}")
    yield m
    for path in reversed(m.mounted):
        m.umount(path)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its disk has no space left; return it."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 16)
    with open(filler, "wb") as fh:
        while True:
            try:
                fh.write(chunk)
                fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # Down to the last page: a write of a few bytes fails too.
    with pytest.raises(OSError) as full:
        (folder / "one-more").write_bytes(b"x" * 100)
    assert full.value.errno == errno.ENOSPC
    return filler


# --- SQLite: locked, read-only ---------------------------------------------------------------------


def test_a_lock_held_past_the_busy_timeout_delays_a_job_which_succeeds_once_released(
    tmp_path, processes, faces_dir
):
    stack, web = fault_stack(tmp_path, processes)
    enroll_jolie(web, faces_dir, "room-l")

    # Another process's write lock, held for several busy timeouts (as a long migration or a
    # backup holding the file would).
    holder = sqlite3.connect(tmp_path / "attendance.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        resp = recognise(web, faces_dir, "room-l", "2026-11-09")  # reads only: accepted
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]

        # A request that writes waits the busy timeout, then says why: 503, not 500.
        rename = web.request("PATCH", "/api/v1/students/jolie", json={"name": "A. Jolie"})
        assert rename.status_code == 503, rename.text
        error = rename.json()["error"]
        assert error["code"] == "store_unavailable"
        assert "locked by another writer" in error["message"]
        ready = web.get("/readyz")
        assert ready.status_code == 503
        assert "locked" in ready.json()["checks"]["records"]

        # The job meets the lock at its first write, after all its work: retried, not failed.
        wait_until(lambda: attempts(stack, job_id) >= 3, 60, "the job retried twice")
        job = web.get(f"/api/v1/jobs/{job_id}").json()
        assert job["state"] in ("queued", "running"), job
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    done = web.wait_for_job(job_id, job_bound(stack.settings))
    assert done["state"] == "succeeded", done
    assert done["result"]["present"] == ["jolie"]
    assert time.monotonic() - started < job_bound(stack.settings)
    assert attendance_rows(web, "room-l") == [("2026-11-09", "jolie")]
    assert web.get("/readyz").status_code == 200
    assert web.request("PATCH", "/api/v1/students/jolie", json={"name": "A. Jolie"}).ok


def test_a_read_only_database_delays_jobs_until_writable_and_readyz_says_so(
    tmp_path, processes, faces_dir, mounts
):
    stack, web = fault_stack(tmp_path, processes)
    enroll_jolie(web, faces_dir, "room-ro")
    assert web.get("/readyz").status_code == 200
    database = tmp_path / "attendance.db"

    mounts.read_only(database)
    try:
        # Reads still work (the API serves them; the old readiness checked only those) ...
        assert web.get("/api/v1/students/jolie").status_code == 200
        # ... writes do not, and readiness now says so.
        ready = web.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "read-only" in ready.json()["checks"]["records"]
        rename = web.request("PATCH", "/api/v1/students/jolie", json={"name": "A. Jolie"})
        assert rename.status_code == 503, rename.text
        assert rename.json()["error"]["code"] == "store_unavailable"
        assert "read-only" in rename.json()["error"]["message"]

        # Three jobs, two of them for the same register: all accepted, all held back.
        started = time.monotonic()
        jobs = []
        for date in ("2026-11-10", "2026-11-11", "2026-11-11"):
            resp = recognise(web, faces_dir, "room-ro", date)
            assert resp.status_code == 202, resp.text
            jobs.append(resp.json()["job_id"])
        wait_until(lambda: all(attempts(stack, j) >= 2 for j in jobs), 90, "every job retried once")
        for job_id in jobs:
            assert web.get(f"/api/v1/jobs/{job_id}").json()["state"] in ("queued", "running")
    finally:
        mounts.umount(database)

    for job_id in jobs:
        done = web.wait_for_job(job_id, job_bound(stack.settings))
        assert done["state"] == "succeeded", done
        assert done["result"]["present"] == ["jolie"]
    assert time.monotonic() - started < len(jobs) * job_bound(stack.settings)
    # One mark per register, none twice, none lost.
    assert attendance_rows(web, "room-ro") == [("2026-11-10", "jolie"), ("2026-11-11", "jolie")]
    assert web.get("/readyz").status_code == 200


# --- a full disk -------------------------------------------------------------------------------------


def stored_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "filler"}


def test_a_full_disk_under_the_blob_store_is_507_and_a_failed_job_and_readyz_notices(
    tmp_path, processes, faces_dir, mounts
):
    disk = mounts.tmpfs(tmp_path / "disk", "16m")
    store = disk / "store"
    stack, web = fault_stack(tmp_path, processes, blob_store_url=f"file://{store}")
    enroll_jolie(web, faces_dir, "room-d")
    assert web.get("/readyz").status_code == 200

    # A job accepted while there is space (and no worker runs), run once the disk is full.
    stop_process(stack.worker)
    resp = web.request(
        "POST",
        "/api/v1/students",
        data={"student_id": "jolie2", "name": "A. J.", "class_id": "room-d", **CONSENT_FORM},
        files=photo_files(faces_dir, "img2.jpg", "img4.jpg"),
    )
    assert resp.status_code == 202, resp.text
    doomed = resp.json()["job_id"]

    filler = fill(disk)
    before = stored_files(store)
    redis = redis_db.client(stack.settings.redis_url)
    jobs_before = set(redis.keys("attendance:job:*"))

    # An upload: 507 saying which store is full; nothing stored, no job, no consent.
    resp = recognise(web, faces_dir, "room-d", "2026-11-12")
    assert resp.status_code == 507, resp.text
    error = resp.json()["error"]
    assert error["code"] == "storage_full"
    assert error["message"].startswith("storage full") and "blob store" in error["message"]
    resp = web.request(
        "POST",
        "/api/v1/students",
        data={"student_id": "ann", "name": "Ann", "class_id": "room-d", **CONSENT_FORM},
        files=photo_files(faces_dir, "img6.jpg"),
    )
    assert resp.status_code == 507, resp.text
    assert stored_files(store) == before
    assert set(redis.keys("attendance:job:*")) == jobs_before
    assert web.get("/api/v1/students/ann").status_code == 404
    assert open_records(stack.settings.records_url).get_consent("ann") is None  # put back

    ready = web.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["blob_store"].startswith("storage full")
    assert ready.json()["checks"]["records"] == "ok"

    # The accepted enrollment meets the full disk when it files its photos: it fails at once,
    # saying so (a full disk is rarely freed within seconds of retrying), and adds no student.
    assert web.get(f"/api/v1/jobs/{doomed}").json()["state"] == "queued"
    stack.worker = stack.start_worker()
    processes.append(stack.worker)
    started = time.monotonic()
    failed = web.wait_for_job(doomed, job_bound(stack.settings))
    assert failed["state"] == "failed", failed
    assert failed["error"]["code"] == "storage_full"
    assert "blob store" in failed["error"]["message"]
    assert time.monotonic() - started < RUN_SECONDS + 60  # + the new worker's start
    assert web.get("/api/v1/students/jolie2").status_code == 404

    # Space freed: ready again, and nothing stored before was lost or cut short.
    filler.unlink()
    assert web.get("/readyz").status_code == 200
    resp = recognise(web, faces_dir, "room-d", "2026-11-12")
    assert resp.status_code == 202, resp.text
    done = web.wait_for_job(resp.json()["job_id"], job_bound(stack.settings))
    assert done["state"] == "succeeded", done
    assert done["result"]["present"] == ["jolie"]  # the gallery is whole
    assert attendance_rows(web, "room-d") == [("2026-11-12", "jolie")]
    assert not [p for p in store.rglob(".tmp-*")]  # no temp file left by a failed write


def test_a_full_disk_under_sqlite_is_storage_full_and_keeps_what_was_stored(tmp_path, mounts):
    from attendance.domain.errors import StorageFull
    from attendance.domain.schemas import AttendanceRecord, AuditEntry
    from attendance.stores.records import SqliteRecords

    disk = mounts.tmpfs(tmp_path / "disk", "8m")
    records = SqliteRecords(disk / "attendance.db", busy_timeout=1)
    records.upsert_student("ann", "Ann", "c1")
    mark = AttendanceRecord(
        class_id="c1",
        date=dt.date(2026, 11, 13),
        student_id="ann",
        name="Ann",
        first_seen_at=dt.datetime(2026, 11, 13, 9, tzinfo=dt.UTC),
        distance=0.2,
    )
    assert records.mark_present(mark)
    filler = fill(disk)

    # A write that needs new pages: refused whole, saying which store is full. (While the
    # disk is full even a read may be refused so: a WAL database opened anew needs room for its
    # -shm index.)
    entry = AuditEntry(
        at=dt.datetime.now(dt.UTC), actor="t", action="a", target="x", detail={"pad": "p" * 10**6}
    )
    with pytest.raises(StorageFull) as full:
        records.append_audit(entry)
    assert full.value.status == 507 and "records database" in full.value.message
    with pytest.raises(StorageFull):
        records.probe_write()

    # Space freed: what was stored is whole, the refused write left nothing, writes work.
    filler.unlink()
    check = sqlite3.connect(disk / "attendance.db")
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    check.close()
    assert records.list_attendance(class_id="c1") == [mark]
    assert records.get_student("ann").name == "Ann"
    assert records.list_audit() == []
    records.append_audit(entry)
    records.probe_write()
    assert records.list_audit() == [entry]
    assert records.list_attendance(class_id="c1") == [mark]


# --- gunicorn's own answers ---------------------------------------------------------------------------


@pytest.fixture
def silent_redis():
    """A Redis address that accepts connections and never answers (a hung server): every
    request that reaches Redis hangs there until its socket timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def web_env(tmp_path: Path, redis_url: str) -> dict:
    return {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "REDIS_URL": redis_url,
        "ATTENDANCE_BLOB_STORE_URL": f"file://{tmp_path}/store",
        "ATTENDANCE_RECORDS_URL": f"sqlite:///{tmp_path}/attendance.db",
    }


def assert_cut_short(resp: requests.Response) -> None:
    assert resp.status_code == 500, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    error = resp.json()["error"]
    assert error["code"] == "internal_error"
    assert "cut short" in error["message"]


HUNG = "/api/v1/jobs/" + "ab" * 16  # reads the job from Redis


def test_a_request_past_gunicorns_timeout_gets_json(tmp_path, processes, silent_redis):
    web = start_web(tmp_path, web_env(tmp_path, silent_redis), args=("--timeout", "3"))
    processes.append(web.proc)
    started = time.monotonic()
    resp = web.get(HUNG, timeout=60)
    assert_cut_short(resp)
    assert time.monotonic() - started < 15
    assert "WORKER TIMEOUT" in web.log.read_text()
    # gunicorn starts a new worker, which answers as before.
    wait_until(lambda: _healthy(web), 60, "a new worker answers")


def _healthy(web: Web) -> bool:
    try:
        return requests.get(web.base + "/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_a_request_cut_short_by_sigquit_gets_json(tmp_path, processes, silent_redis):
    web = start_web(tmp_path, web_env(tmp_path, silent_redis), args=("--timeout", "120"))
    processes.append(web.proc)
    answers: list = []
    client = threading.Thread(target=lambda: answers.append(web.get(HUNG, timeout=60)))
    client.start()
    time.sleep(2)  # the request is now waiting on Redis in the worker
    assert not answers
    web.proc.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown: every worker, now
    client.join(timeout=30)
    assert answers, "no answer"
    assert_cut_short(answers[0])
    assert web.proc.wait(timeout=30) == 0


def test_gunicorns_own_answers_are_json_with_threads_too_and_the_sync_class_refuses_them(
    tmp_path, processes
):
    env = web_env(tmp_path, redis_db.url_for(DB))
    web = start_web(tmp_path, env, worker_class=THREAD_WORKER, args=("--threads", "2"))
    processes.append(web.proc)
    resp = requests.get(web.base + "/healthz?q=" + "a" * 5000, timeout=10)
    assert resp.status_code == 414 and resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["code"] == "uri_too_long"
    assert f"Using worker: {THREAD_WORKER}" in web.log.read_text()

    # gunicorn would swap a class named ...SyncWorker for its plain gthread worker here.
    refused = start_web(tmp_path, env, args=("--threads", "2"), wait=False)
    processes.append(refused.proc)
    assert refused.proc.wait(timeout=60) != 0
    assert "use attendance.web.gunicorn_workers.ThreadJsonWorker" in refused.log.read_text()
