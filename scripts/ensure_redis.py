#!/usr/bin/env python3
"""Make sure a Redis is there for the stack or the tests. Standard library only.

Modes (the Redis is the one at ``$REDIS_URL``, else ``REDIS_URL`` in ``.env``, else
``redis://127.0.0.1:6379/0``):

``ensure_redis.py``
    Serve. If that Redis answers PING, keep running quietly (so a process manager does not
    take this entry for dead) until SIGTERM/SIGINT, then exit 0. Otherwise, if the URL is on
    this machine, exec ``redis-server`` in the foreground on its host and port. Persistence:
    no RDB snapshots (``--save ""``) but an append-only file (``--appendonly yes``, fsync every
    second) under ``var/redis`` (``--data-dir`` to change), so queued jobs and job state
    survive a restart of the stack; ``make clean`` removes it.

``ensure_redis.py --wait [SECONDS] [-- COMMAND ...]``
    Wait (default 60 s) until that Redis answers PING, then exec COMMAND (or exit 0).
    Exit 1 if it does not answer in time.

``ensure_redis.py --with-test-redis -- COMMAND ...``
    Run COMMAND with ``REDIS_URL`` and ``ATTENDANCE_TEST_REDIS_URL`` pointing at a Redis meant
    for tests, and exit with COMMAND's status. Which Redis: ``$ATTENDANCE_TEST_REDIS_URL`` if
    set and answering; else a private throw-away ``redis-server`` on a free loopback port
    (no persistence; pidfile and log in ``var/test-redis/run-<pid>/``), stopped afterwards; else, if
    ``redis-server`` is not installed, the Redis at ``REDIS_URL`` if it answers (with a warning:
    tests may write to it).

``ensure_redis.py --ping``
    Exit 0 if that Redis answers PING, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import List, NoReturn, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATA_DIR = REPO_ROOT / "var" / "redis"
TEST_DIR = REPO_ROOT / "var" / "test-redis"

UP, LOADING, BAD, DOWN = "up", "loading", "bad", "down"


def say(message: str) -> None:
    print(f"ensure_redis: {message}", flush=True)


def die(message: str, code: int = 1) -> NoReturn:
    print(f"ensure_redis: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


# --------------------------------------------------------------------------------------------
# Where and how to reach Redis


def _dotenv_value(key: str) -> Optional[str]:
    try:
        lines = (REPO_ROOT / ".env").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):]
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return value
    return None


def configured_url() -> str:
    return os.environ.get("REDIS_URL") or _dotenv_value("REDIS_URL") or DEFAULT_URL


class Target:
    """The parts of a ``redis://``, ``rediss://`` or ``unix://`` URL that matter here."""

    def __init__(self, url: str):
        self.url = url
        parts = urlsplit(url)
        self.scheme = parts.scheme or "redis"
        if self.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {self.scheme!r} in {self.safe_url}")
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        if self.password is None and self.username and self.scheme != "unix":
            # redis://secret@host/ is the old "password only" form.
            self.password, self.username = self.username, None
        if self.scheme == "unix":
            self.host, self.port, self.socket_path = None, None, parts.path
        else:
            self.host = parts.hostname or "127.0.0.1"
            try:
                self.port = parts.port or 6379
            except ValueError as err:
                raise ValueError(f"bad port in {self.safe_url}") from err
            self.socket_path = None

    @property
    def safe_url(self) -> str:
        parts = urlsplit(self.url)
        if parts.password or parts.username:
            netloc = "***@" + parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url

    @property
    def where(self) -> str:
        return self.socket_path if self.socket_path else f"{self.host}:{self.port}"

    def is_local(self) -> bool:
        if self.socket_path:
            return True
        host = (self.host or "").strip("[]")
        if host in ("localhost", "0.0.0.0", "::", socket.gethostname()):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def connect(self, timeout: float) -> socket.socket:
        if self.socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.socket_path)
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.scheme == "rediss":
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=self.host)
        return sock


def _command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
        if len(data) > 4096:
            raise ConnectionError("reply too long")
    return data[:-2]


def probe(target: Target, timeout: float = 1.0) -> Tuple[str, str]:
    """PING the Redis. Returns (``UP``|``LOADING``|``BAD``|``DOWN``, detail)."""
    try:
        with contextlib.closing(target.connect(timeout)) as sock:
            if target.password is not None:
                auth = [target.username, target.password] if target.username else [target.password]
                sock.sendall(_command("AUTH", *auth))
                reply = _read_line(sock)
                if not reply.startswith(b"+"):
                    return BAD, reply.decode(errors="replace")
            sock.sendall(_command("PING"))
            reply = _read_line(sock)
    except (OSError, ConnectionError, ssl.SSLError) as err:
        return DOWN, str(err) or type(err).__name__
    if reply == b"+PONG":
        return UP, "PONG"
    text = reply.decode(errors="replace")
    if reply.startswith(b"-LOADING"):
        return LOADING, text
    return BAD, text or "empty reply"


def find_redis_server() -> Optional[str]:
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server",
                      "/usr/local/bin/redis-server", "/opt/homebrew/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


MISSING_SERVER = (
    "redis-server is not installed. `make sysdeps` installs it with apt-get "
    "(`make run` and `make test` do that themselves); elsewhere install Redis >= 6 "
    "(e.g. `brew install redis`) or point REDIS_URL at a running Redis."
)


# --------------------------------------------------------------------------------------------
# Modes


def _exit_on_signal(signum, _frame) -> NoReturn:
    say(f"{signal.Signals(signum).name} received, exiting")
    sys.exit(0)


def serve(target: Target, data_dir: Path) -> NoReturn:
    state, detail = probe(target)
    if state in (UP, LOADING):
        say(f"Redis already answers at {target.safe_url}; not starting another "
            "(this entry idles until stopped)")
        signal.signal(signal.SIGTERM, _exit_on_signal)
        signal.signal(signal.SIGINT, _exit_on_signal)
        while True:
            time.sleep(30)
            new_state, new_detail = probe(target)
            if new_state != state:
                say(f"Redis at {target.safe_url} is now {new_state}: {new_detail}")
                state = new_state
    if state == BAD:
        die(f"something at {target.where} answers but not as the Redis in REDIS_URL "
            f"({target.safe_url}) should: {detail}")
    if not target.is_local():
        die(f"the Redis at {target.safe_url} does not answer ({detail}) and is not on this "
            "machine, so it cannot be started here")
    server = find_redis_server()
    if server is None:
        die(MISSING_SERVER)
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [server]
    if target.socket_path:
        args += ["--port", "0", "--unixsocket", target.socket_path, "--unixsocketperm", "700"]
    else:
        args += ["--bind", target.host, "--port", str(target.port)]
    args += [
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--dir", str(data_dir),
        "--daemonize", "no",
    ]
    if target.password is not None:
        if target.username and target.username != "default":
            die("REDIS_URL names a user other than 'default'; set up that Redis yourself")
        args += ["--requirepass", target.password]
    say(f"no Redis answers at {target.safe_url} ({detail}); starting {server} on "
        f"{target.where}, data in {data_dir}")
    sys.stdout.flush()
    os.execv(server, args)


def wait_for(target: Target, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    next_note = 0.0
    while True:
        state, detail = probe(target)
        if state == UP:
            return True
        if state == BAD:
            die(f"Redis at {target.safe_url} answers with an error: {detail}")
        now = time.monotonic()
        if now >= deadline:
            print(f"ensure_redis: error: no Redis answered at {target.safe_url} within "
                  f"{timeout:g}s (last: {detail})", file=sys.stderr, flush=True)
            return False
        if now >= next_note:
            say(f"waiting for Redis at {target.safe_url} ({state}: {detail})")
            next_note = now + 10
        time.sleep(0.25)


def _free_port() -> int:
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


def _stop_stale_test_servers() -> None:
    """Stop private test Redises whose ``--with-test-redis`` run was killed before cleaning up.

    Each run keeps its pidfile and log in ``var/test-redis/run-<pid of that run>/``; a run
    whose process is gone left its Redis behind. Runs still alive (a parallel ``make test``)
    are left alone.
    """
    if not TEST_DIR.is_dir():
        return
    for run_dir in TEST_DIR.glob("run-*"):
        try:
            owner = int(run_dir.name[len("run-"):])
        except ValueError:
            continue
        if owner != os.getpid() and b"ensure_redis" in _cmdline(owner):
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


def _start_test_server(server: str, run_dir: Path) -> Tuple[subprocess.Popen, str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "redis.log"
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        process = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(run_dir), "--logfile", str(log),
             "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,  # we stop it ourselves, after the command
        )
        (run_dir / "redis.pid").write_text(f"{process.pid}\n")
        url = f"redis://127.0.0.1:{port}/0"
        target = Target(url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            if probe(target, timeout=0.5)[0] == UP:
                return process, url
            time.sleep(0.05)
        _stop(process)
        try:
            last_error = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            last_error = "(no log)"
    die(f"could not start a private redis-server for the tests; its log ({log}) ends:\n"
        f"{last_error}")


def _run(command: List[str], env: dict) -> int:
    """Run ``command`` in the foreground; Ctrl-C reaches it directly, we just outlive it."""
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as err:
        die(f"cannot run {command[0]}: {err}")

    def forward(signum, _frame):
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


def with_test_redis(command: List[str]) -> int:
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
        return _run(command, env)

    server = find_redis_server()
    if server is None:
        target = Target(configured_url())
        state, detail = probe(target)
        if state != UP:
            die(MISSING_SERVER)
        say(f"warning: redis-server is not installed; tests use the Redis at "
            f"{target.safe_url} and may write to it")
        env["REDIS_URL"] = env["ATTENDANCE_TEST_REDIS_URL"] = target.url
        return _run(command, env)

    _stop_stale_test_servers()
    run_dir = TEST_DIR / f"run-{os.getpid()}"
    process, url = _start_test_server(server, run_dir)
    say(f"started a private test Redis at {url} (pid {process.pid})")
    try:
        env["REDIS_URL"] = env["ATTENDANCE_TEST_REDIS_URL"] = url
        return _run(command, env)
    finally:
        _stop(process)
        shutil.rmtree(run_dir, ignore_errors=True)
        say("stopped the private test Redis")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: List[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring for the modes.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--wait", nargs="?", type=float, const=60.0, metavar="SECONDS",
                      help="wait until Redis answers (default 60 s), then exec the command "
                      "after --")
    mode.add_argument("--with-test-redis", action="store_true",
                      help="run the command after -- against a Redis for tests")
    mode.add_argument("--ping", action="store_true", help="exit 0 if Redis answers PING")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="where a Redis started here keeps its append-only file "
                        "(default: var/redis)")
    args = parser.parse_args(argv)

    if args.with_test_redis:
        return with_test_redis(command)
    try:
        target = Target(configured_url())
    except ValueError as err:
        die(str(err))
    if args.ping:
        state, detail = probe(target)
        print(f"{target.safe_url}: {state} ({detail})")
        return 0 if state == UP else 1
    if command and args.wait is None:
        die("a command after -- needs --wait or --with-test-redis")
    if args.wait is not None:
        try:
            ok = wait_for(target, args.wait)
        except KeyboardInterrupt:
            return 130
        if not ok:
            return 1
        if not command:
            return 0
        try:
            os.execvp(command[0], command)
        except OSError as err:
            die(f"cannot run {command[0]}: {err}")
    data_dir = args.data_dir if args.data_dir.is_absolute() else REPO_ROOT / args.data_dir
    serve(target, data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
