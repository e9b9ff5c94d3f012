"""``attendance-redis --with-test-redis -- COMMAND``: run COMMAND (pytest, the benchmarks) with
``REDIS_URL`` and ``ATTENDANCE_TEST_REDIS_URL`` pointing at a Redis meant for tests.

Which Redis: ``$ATTENDANCE_TEST_REDIS_URL`` if set and answering; else a private throw-away
``redis-server`` on a free loopback port (no persistence, no password; pidfile and log in
``var/test-redis/run-<pid>/``), stopped afterwards; else, if ``redis-server`` is not installed,
the Redis at ``REDIS_URL`` if it answers (with a warning: tests may write to it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import FrameType

from attendance.cli.env_file import VAR_DIR
from attendance.cli.redis_probe import (
    MISSING_SERVER,
    UP,
    Target,
    configured_url,
    die,
    find_redis_server,
    probe,
    say,
)

TEST_DIR = VAR_DIR / "test-redis"
# In the argv of the run that owns a run-<pid> folder (whatever starts it: the console script,
# python -m); what tells a live run from a pid reused by another process.
OWNER_MARK = b"--with-test-redis"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop_stale_servers() -> None:
    """Stop private test Redises whose ``--with-test-redis`` run was killed before cleaning up.

    Each run keeps its pidfile and log in ``var/test-redis/run-<pid of that run>/``; a run
    whose process is gone left its Redis behind. Runs still alive (a parallel ``make test``)
    are left alone.
    """
    if not TEST_DIR.is_dir():
        return
    for run_dir in TEST_DIR.glob("run-*"):
        try:
            owner = int(run_dir.name[len("run-") :])
        except ValueError:
            continue
        if owner != os.getpid() and OWNER_MARK in _cmdline(owner):
            continue
        try:
            pid = int((run_dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and b"redis-server" in _cmdline(pid):
            say(f"stopping the test Redis left over from an earlier run (pid {pid})")
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(40):
                if b"redis-server" not in _cmdline(pid):
                    break
                time.sleep(0.25)
        shutil.rmtree(run_dir, ignore_errors=True)


def _server_command(server: str, port: int, run_dir: Path) -> list[str]:
    return [
        server,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(run_dir),
        "--logfile",
        str(run_dir / "redis.log"),
        "--daemonize",
        "no",
    ]


def _answers_soon(process: subprocess.Popen, target: Target, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if probe(target, timeout=0.5)[0] == UP:
            return True
        time.sleep(0.05)
    return False


def _start_server(server: str, run_dir: Path) -> tuple[subprocess.Popen, str]:
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = run_dir / "redis.log"
    last_error = ""
    for _attempt in range(3):  # the free port can be taken between asking and binding
        port = free_port()
        process = subprocess.Popen(
            _server_command(server, port, run_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # we stop it ourselves, after the command
        )
        (run_dir / "redis.pid").write_text(f"{process.pid}\n")
        url = f"redis://127.0.0.1:{port}/0"
        if _answers_soon(process, Target(url), 15):
            return process, url
        _stop(process)
        try:
            last_error = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            last_error = "(no log)"
    die(
        f"could not start a private redis-server for the tests; its log ({log}) ends:\n{last_error}"
    )


def run(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` in the foreground; Ctrl-C reaches it directly, we just outlive it."""
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as err:
        die(f"cannot run {command[0]}: {err}")

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            child.send_signal(signum)

    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return 128 - code if code < 0 else code


def with_test_redis(command: list[str]) -> int:
    """Run ``command`` against a Redis for tests (see the module's docstring); its exit status."""
    if not command:
        die("--with-test-redis needs a command after --")
    env = dict(os.environ)
    explicit = os.environ.get("ATTENDANCE_TEST_REDIS_URL")
    if explicit:
        target = Target(explicit)
        state, detail = probe(target)
        if state != UP:
            die(f"ATTENDANCE_TEST_REDIS_URL={target.safe_url} does not answer PING ({detail})")
        say(f"tests use ATTENDANCE_TEST_REDIS_URL={target.safe_url}")
        env["REDIS_URL"] = explicit
        return run(command, env)

    server = find_redis_server()
    if server is None:
        target = Target(configured_url())
        state, detail = probe(target)
        if state != UP:
            die(MISSING_SERVER)
        say(
            f"warning: redis-server is not installed; tests use the Redis at "
            f"{target.safe_url} and may write to it"
        )
        env["REDIS_URL"] = env["ATTENDANCE_TEST_REDIS_URL"] = target.url
        return run(command, env)

    _stop_stale_servers()
    run_dir = TEST_DIR / f"run-{os.getpid()}"
    process, url = _start_server(server, run_dir)
    say(f"started a private test Redis at {url} (pid {process.pid})")
    try:
        env["REDIS_URL"] = env["ATTENDANCE_TEST_REDIS_URL"] = url
        return run(command, env)
    finally:
        _stop(process)
        shutil.rmtree(run_dir, ignore_errors=True)
        say("stopped the private test Redis")
