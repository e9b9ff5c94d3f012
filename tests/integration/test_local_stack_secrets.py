"""The local stack (`make run`) keeps its secrets off command lines and its files private.

Real processes throughout: the Makefile's `run` recipe and the Procfile run in a sandbox (a
temporary directory holding a copy of the Procfile, as the working directory of the installed
commands, so its var/ is the sandbox's), redis-server
instances started here with and without passwords and persistence, and /proc/<pid>/cmdline of
every process started.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.emulators import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REDIS_SERVER = shutil.which("redis-server")

needs_redis_server = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")


def make_sandbox(root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copy2(REPO / "Procfile", root / "Procfile")
    (root / "src").symlink_to(REPO / "src")  # `streamlit run src/attendance/frontend/app.py`
    return root


def base_env(**extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "ATTENDANCE_TEST_REDIS_URL", "ATTENDANCE_LOCAL_REDIS_PORT")
        and not k.startswith("FLOWER_")
    }
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def descendants(root_pid: int) -> dict[int, bytes]:
    """The processes under root_pid, with their argv."""
    return {pid: argv for pid in _descendant_pids(root_pid) if (argv := cmdline(pid))}


def _descendant_pids(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat_line.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def not_private(root: Path) -> list[str]:
    """Paths under root (root included) that group or others may read, write or enter."""
    bad = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if stat.S_IMODE(mode) & 0o077:
            bad.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(mode):o}")
    return bad


class Output:
    """Collects a process's output in a thread, so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text:
                return True
            if self.process.poll() is not None:
                self._thread.join(5)
                return needle in self.text
            time.sleep(0.1)
        return False


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def redis_server(tmp: Path, password: str | None, appendonly: str = "no", save: str = ""):
    """A real redis-server on a free loopback port; the password goes in on stdin."""
    port = free_port()
    data = tmp / f"redis-{port}"
    data.mkdir()
    config = [
        f"port {port}",
        "bind 127.0.0.1",
        f'save "{save}"',
        f"appendonly {appendonly}",
        f'dir "{data}"',
        "daemonize no",
        f'logfile "{data}/redis.log"',
    ]
    if password:
        config.append(f'requirepass "{password}"')
    process = subprocess.Popen(
        [REDIS_SERVER, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    process.stdin.write("\n".join(config).encode() + b"\n")
    process.stdin.close()
    client = redis.Redis(port=port, password=password, socket_connect_timeout=1)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield port
    finally:
        client.close()
        stop(process)


def run_script(args: list[str], env: dict, cwd: Path = REPO, timeout: float = 30):
    return subprocess.run(
        [str(VENV_BIN / "attendance-redis"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---------------------------------------------------------------------------------------------
# Adopting a Redis that REDIS_URL names: its persistence, and its password


def _serve_until(env: dict, needle: str, timeout: float = 15) -> tuple[str, int]:
    """Run ensure_redis.py (serve mode) until needle appears, then SIGTERM it."""
    process = subprocess.Popen(
        [str(VENV_BIN / "attendance-redis")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(process)
    try:
        output.wait_for(needle, timeout)
        time.sleep(0.3)  # the rest of a multi-line message
    finally:
        stop(process)
    output._thread.join(5)
    return output.text, process.returncode


@needs_redis_server
@pytest.mark.parametrize(
    "save, expect",
    [
        ("", "persists nothing"),
        ("900 1", "only RDB snapshots"),
    ],
)
def test_adopting_a_redis_without_an_append_only_file_warns_with_the_fix(tmp_path, save, expect):
    password = "adopt-me-" + os.urandom(6).hex()
    with redis_server(tmp_path, password, appendonly="no", save=save) as port:
        env = base_env(REDIS_URL=f"redis://:{password}@127.0.0.1:{port}/0")
        text, code = _serve_until(env, "!!!!!!!!!!\n")
    assert "not starting another" in text
    assert "WARNING: queued jobs would NOT survive a restart" in text, text
    assert expect in text
    # The fix: persistence on that Redis, another Redis, or the stack's own.
    assert "CONFIG SET appendonly yes" in text and "unset REDIS_URL" in text
    assert password not in text
    assert code == 0  # adopted all the same, and stopped cleanly by SIGTERM


@needs_redis_server
def test_adopting_a_redis_with_an_append_only_file_says_jobs_survive(tmp_path):
    with redis_server(tmp_path, None, appendonly="yes") as port:
        env = base_env(REDIS_URL=f"redis://127.0.0.1:{port}/0")
        text, code = _serve_until(env, "survive its restart")
    assert "keeps an append-only file" in text and "survive its restart" in text, text
    assert "WARNING" not in text
    assert code == 0


@needs_redis_server
@pytest.mark.parametrize(
    "server_password, url_password, expect",
    [
        ("s3cret-on-server", None, "asks for a password and REDIS_URL has none"),
        ("s3cret-on-server", "wrong-one", "refused the password in REDIS_URL"),
        (None, "pw-for-nobody", "REDIS_URL has a password but the Redis at"),
    ],
)
def test_a_redis_that_does_not_take_the_urls_password_is_a_clear_error(
    tmp_path, server_password, url_password, expect
):
    with redis_server(tmp_path, server_password) as port:
        auth = f":{url_password}@" if url_password else ""
        env = base_env(REDIS_URL=f"redis://{auth}127.0.0.1:{port}/0")
        served = run_script([], env)
        waited = run_script(["--wait", "5", "--", "true"], env)
    for result in (served, waited):
        assert result.returncode == 1, result.stdout + result.stderr
        assert expect in result.stderr, result.stderr
        for secret in filter(None, (server_password, url_password)):
            assert secret not in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# The Redis that ensure_redis.py starts: password on stdin, never in argv; loopback; persistent


@needs_redis_server
def test_a_redis_started_for_a_url_with_a_password_requires_it_and_hides_it(tmp_path):
    sandbox = make_sandbox(tmp_path / "repo")
    port, password = free_port(), "started-" + os.urandom(8).hex()
    # redis-server rewrites its process title at once, so /proc/<pid>/cmdline soon hides what
    # it was given: a redis-server first on PATH records its argv, then execs the real one.
    bin_dir, argv_file = tmp_path / "bin", tmp_path / "redis-server-argv"
    bin_dir.mkdir()
    (bin_dir / "redis-server").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" > "{argv_file}"\nexec "{REDIS_SERVER}" "$@"\n'
    )
    (bin_dir / "redis-server").chmod(0o700)
    env = base_env(REDIS_URL=f"redis://:{password}@127.0.0.1:{port}/0")
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    process = subprocess.Popen(
        [str(VENV_BIN / "attendance-redis")],
        cwd=sandbox,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: os.umask(0o077),
    )
    output = Output(process)
    try:
        client = redis.Redis(
            port=port, password=password, socket_connect_timeout=1, decode_responses=True
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, output.text
                time.sleep(0.1)
        # ensure_redis.py exec'd redis-server: same pid, and no password in its argv.
        assert b"redis-server" in cmdline(process.pid)
        assert password.encode() not in cmdline(process.pid)
        given = argv_file.read_text()
        assert given.startswith(str(bin_dir / "redis-server")) and password not in given, given
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_connect_timeout=1).ping()
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("save")["save"] == ""
        assert client.config_get("dir")["dir"] == str(sandbox / "var" / "redis")
        client.set("k", "v")
        time.sleep(1.5)  # appendfsync everysec
        client.close()
    finally:
        stop(process)
    assert password not in output.text
    assert not list((sandbox / "var").rglob("*.conf"))  # the config never touched the disk
    assert list((sandbox / "var" / "redis").rglob("*.aof")), "no append-only file"
    assert not_private(sandbox / "var") == []


# ---------------------------------------------------------------------------------------------
# --stack (what `make run` runs honcho with): which REDIS_URL, umask, modes under var/


def _stack_env_of_child(sandbox: Path, env: dict) -> tuple[dict, subprocess.CompletedProcess]:
    dump = sandbox / "child-env"
    code = (
        "import json, os, pathlib, sys; "
        "pathlib.Path(sys.argv[1]).write_text(json.dumps(dict(os.environ))); "
        "pathlib.Path('var/written-by-the-stack').write_text('x'); "
        "pathlib.Path('var/made-by-the-stack').mkdir(exist_ok=True)"
    )
    result = run_script(["--stack", "--", sys.executable, "-c", code, str(dump)], env, cwd=sandbox)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(dump.read_text()), result


def test_stack_gives_the_processes_its_own_redis_with_a_password_from_var(tmp_path):
    sandbox = make_sandbox(tmp_path / "repo")
    port = free_port()
    # What an older `make run` left behind: world-readable.
    (sandbox / "var" / "store").mkdir(parents=True)
    (sandbox / "var").chmod(0o755)
    (sandbox / "var" / "store").chmod(0o755)
    for name in ("attendance.db", "store/photo.jpg"):
        (sandbox / "var" / name).write_text("old")
        (sandbox / "var" / name).chmod(0o644)
    child_env, result = _stack_env_of_child(
        sandbox, base_env(ATTENDANCE_LOCAL_REDIS_PORT=str(port))
    )

    password_file = sandbox / "var" / "redis-password"
    password = password_file.read_text().strip()
    assert len(password) >= 24
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert child_env["REDIS_URL"] == f"redis://:{password}@127.0.0.1:{port}/0"
    assert password not in result.stdout + result.stderr
    assert "var/redis-password" in result.stdout
    # umask 077 for what the stack writes, and what was there before made private.
    assert stat.S_IMODE((sandbox / "var" / "written-by-the-stack").stat().st_mode) == 0o600
    assert stat.S_IMODE((sandbox / "var" / "made-by-the-stack").stat().st_mode) == 0o700
    assert stat.S_IMODE((sandbox / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((sandbox / "var" / "attendance.db").stat().st_mode) == 0o600
    assert not_private(sandbox / "var") == []

    # The same password on the next start.
    child_env, _ = _stack_env_of_child(sandbox, base_env(ATTENDANCE_LOCAL_REDIS_PORT=str(port)))
    assert child_env["REDIS_URL"] == f"redis://:{password}@127.0.0.1:{port}/0"


def test_stack_keeps_a_redis_url_the_user_set(tmp_path):
    sandbox = make_sandbox(tmp_path / "repo")
    theirs = "redis://:their%2Fpw@10.1.2.3:6390/4"
    child_env, result = _stack_env_of_child(sandbox, base_env(REDIS_URL=theirs))
    assert child_env["REDIS_URL"] == theirs
    assert "their" not in result.stdout + result.stderr
    assert not (sandbox / "var" / "redis-password").exists()

    # In .env (which honcho loads for every process): left to it, not overridden.
    (sandbox / "var" / "written-by-the-stack").unlink()
    (sandbox / "var" / "made-by-the-stack").rmdir()
    (sandbox / ".env").write_text(f"REDIS_URL={theirs}\n")
    child_env, _ = _stack_env_of_child(sandbox, base_env())
    assert "REDIS_URL" not in child_env
    assert not (sandbox / "var" / "redis-password").exists()


# ---------------------------------------------------------------------------------------------
# The whole stack through the Makefile's `run` recipe and the Procfile


def _http(url: str, auth: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


@needs_redis_server
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.skipif(
    not (REPO / "var" / "deepface" / ".deepface").is_dir(),
    reason="not provisioned (make provision)",
)
def test_make_run_uses_a_password_protected_redis_and_shows_no_secret_in_argv(tmp_path):
    sandbox = make_sandbox(tmp_path / "repo")
    ports = {name: free_port() for name in ("redis", "web", "flower", "frontend")}
    env = base_env(
        ATTENDANCE_LOCAL_REDIS_PORT=str(ports["redis"]),
        ATTENDANCE_WEB_PORT=str(ports["web"]),
        ATTENDANCE_API_URL=f"http://127.0.0.1:{ports['web']}",
        ATTENDANCE_FLOWER_PORT=str(ports["flower"]),
        ATTENDANCE_FRONTEND_PORT=str(ports["frontend"]),
        ATTENDANCE_DEEPFACE_HOME=str(REPO / "var" / "deepface"),
        ATTENDANCE_RETENTION_SWEEP_SECONDS="3",
    )
    # The real recipe, minus the installing prerequisites (done for this repository already).
    make = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(REPO / "Makefile"),
            "-o",
            "provision",
            "-o",
            "sysdeps",
            f"VENV={VENV_BIN.parent}",
            "run",
        ],
        cwd=sandbox,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(make)
    seen: dict[int, bytes] = {}
    try:
        ready, deadline = False, time.monotonic() + 240
        while time.monotonic() < deadline and make.poll() is None:
            seen.update(descendants(make.pid))
            status, body = _http(f"http://127.0.0.1:{ports['web']}/readyz")
            if status == 200 and b'"ready"' in body:
                ready = True
                break
            time.sleep(1)
        assert ready, output.text[-6000:]

        var = sandbox / "var"
        redis_password = (var / "redis-password").read_text().strip()
        flower_auth = (var / "flower-credentials").read_text().strip()
        admin_token = (var / "admin-token").read_text().strip()
        admin_password = (var / "admin-password").read_text().strip()
        # The first account logs in with the password make run wrote for it.
        login = urllib.request.Request(
            f"http://127.0.0.1:{ports['web']}/api/v1/sessions",
            data=json.dumps({"username": "admin", "password": admin_password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login, timeout=10) as answer:
            assert answer.status == 201 and json.loads(answer.read())["account"]["role"] == "admin"

        # Flower asks for its password, takes the right one, and reaches the worker via Redis.
        flower = f"http://127.0.0.1:{ports['flower']}"
        assert _http(f"{flower}/")[0] == 401
        assert _http(f"{flower}/", auth="admin:wrong")[0] == 401
        for _ in range(30):
            status, body = _http(f"{flower}/api/workers?refresh=1", auth=flower_auth, timeout=10)
            if status == 200 and b"celery@" in body:
                break
            time.sleep(1)
        assert status == 200 and b"celery@" in body, body
        # Beat sends its periodic task through the same Redis.
        assert output.wait_for("Sending due task", 30), output.text[-4000:]

        # The stack's Redis wants the password from var/, and listens on loopback only.
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=ports["redis"], socket_connect_timeout=2).ping()
        client = redis.Redis(port=ports["redis"], password=redis_password, decode_responses=True)
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.close()

        # No secret in the argv of any process the stack started.
        seen.update(descendants(make.pid))
        argvs = dict(seen)
        everything = b"\n".join(argvs.values())
        for name in (
            b"redis-server",
            b"gunicorn",
            b"celery",
            b"flower",
            b"beat",
            b"streamlit",
            b"honcho",
        ):
            assert name in everything, (name, argvs)
        secrets = (
            redis_password,
            flower_auth,
            flower_auth.partition(":")[2],
            admin_token,
            admin_password,
        )
        for secret in secrets:
            leaks = [argv for argv in argvs.values() if secret.encode() in argv]
            assert leaks == [], leaks
        assert redis_password not in output.text and flower_auth not in output.text
        assert admin_password not in output.text

        # Everything written under var/ is the owner's only.
        assert (var / "attendance.db").exists() and (var / "redis").is_dir()
        assert not_private(var) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        # Whatever honcho did not stop (its processes run in sessions of their own): only the
        # very processes seen, still running the same command.
        for pid, argv in seen.items():
            with contextlib.suppress(OSError):
                if cmdline(pid) == argv:
                    os.kill(pid, signal.SIGKILL)
