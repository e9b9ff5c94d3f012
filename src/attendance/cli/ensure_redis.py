#!/usr/bin/env python3
"""Make sure a Redis is there for the stack or the tests (uses redis-py from the venv).

Modes (the Redis is the one at ``$REDIS_URL``, else ``REDIS_URL`` in ``.env``, else
``redis://127.0.0.1:6379/0``):

``ensure_redis.py --stack -- COMMAND ...``
    What ``make run`` runs honcho with. Sets the umask to 077 and takes group and other
    permissions off everything under ``var/`` (so the database, stores, logs and credentials
    are the owner's only), then picks the stack's Redis and execs COMMAND. If the user set
    ``REDIS_URL`` (environment or ``.env``) that one is used as it is. Otherwise the stack gets
    its own password-protected Redis: ``REDIS_URL=redis://:PASSWORD@127.0.0.1:PORT/0``, the
    password in ``var/redis-password`` (mode 0600, made on the first start), PORT
    ``$ATTENDANCE_LOCAL_REDIS_PORT`` (default 6380, so it never meets a Redis the machine
    already runs on 6379). The password reaches the processes through their environment only.

``ensure_redis.py``
    Serve. If that Redis answers PING, adopt it: ask it for its persistence (``CONFIG GET
    appendonly`` / ``save``) and warn, with the fix, when queued jobs would not survive its
    restart; then keep running quietly (so a process manager does not take this entry for dead)
    until SIGTERM/SIGINT, then exit 0. A Redis that wants another password, or none, is an
    error that says so. Otherwise, if the URL is on this machine, exec ``redis-server`` in the
    foreground on its host and port, its configuration (with ``requirepass`` when the URL has a
    password) given on stdin, never on its command line. Persistence: no RDB snapshots but an
    append-only file (fsync every second) under ``var/redis`` (``--data-dir`` to change), so
    queued jobs and job state survive a restart of the stack; ``make clean`` removes it.

``ensure_redis.py --wait [SECONDS] [-- COMMAND ...]``
    Wait (default 60 s) until that Redis answers PING, then exec COMMAND (or exit 0).
    Exit 1 if it does not answer in time or refuses the password.

``ensure_redis.py --with-test-redis -- COMMAND ...``
    Run COMMAND with ``REDIS_URL`` and ``ATTENDANCE_TEST_REDIS_URL`` pointing at a Redis meant
    for tests, and exit with COMMAND's status. Which Redis: ``$ATTENDANCE_TEST_REDIS_URL`` if
    set and answering; else a private throw-away ``redis-server`` on a free loopback port
    (no persistence, no password; pidfile and log in ``var/test-redis/run-<pid>/``), stopped
    afterwards; else, if ``redis-server`` is not installed, the Redis at ``REDIS_URL`` if it
    answers (with a warning: tests may write to it).

``ensure_redis.py --ping``
    Exit 0 if that Redis answers PING, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote, unquote, urlsplit, urlunsplit

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the venv has it
    print(
        "ensure_redis: error: redis-py is missing: run it with the venv's python "
        "(.venv/bin/python, `make venv` installs it)",
        file=sys.stderr,
    )
    sys.exit(1)

# Like the app's settings, relative paths (var/, .env) are the working directory's: the stack
# runs from its checkout or its container's /app.
REPO_ROOT = Path.cwd()
VAR_DIR = REPO_ROOT / "var"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATA_DIR = VAR_DIR / "redis"
TEST_DIR = VAR_DIR / "test-redis"
# The stack's own Redis (``--stack`` when the user has not set REDIS_URL).
LOCAL_PASSWORD_FILE = VAR_DIR / "redis-password"
LOCAL_PORT_DEFAULT = 6380

UP, LOADING, AUTH, BAD, DOWN = "up", "loading", "auth", "bad", "down"


def say(message: str) -> None:
    print(f"ensure_redis: {message}", flush=True)


def die(message: str, code: int = 1) -> NoReturn:
    print(f"ensure_redis: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


# --------------------------------------------------------------------------------------------
# Where and how to reach Redis


def _dotenv_value(key: str) -> str | None:
    try:
        lines = (REPO_ROOT / ".env").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
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

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A redis-py client for this URL that fails fast (no retries).

        RESP2, so a password goes in with AUTH, which a Redis without one refuses (HELLO 3
        AUTH would be let in), and a Redis that is not the one REDIS_URL means is noticed.
        """
        return redis.Redis.from_url(
            self.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            protocol=2,
        )


def _auth_detail(target: Target, err: Exception) -> str:
    """Say in words what an authentication error means for this URL."""
    text = str(err) or type(err).__name__
    lowered = text.lower()
    if target.password is None:
        return (
            f"it asks for a password and REDIS_URL has none ({text}); put it in REDIS_URL "
            f"as redis://:PASSWORD@{target.where}/<db>"
        )
    if "without any password configured" in lowered or "no password is set" in lowered:
        return (
            f"REDIS_URL has a password but the Redis at {target.where} has none ({text}): "
            "is another Redis listening there?"
        )
    return f"it refused the password in REDIS_URL ({text})"


def probe(target: Target, timeout: float = 1.0) -> tuple[str, str]:
    """PING the Redis. Returns (``UP``|``LOADING``|``AUTH``|``BAD``|``DOWN``, detail)."""
    client = target.client(timeout)
    try:
        reply = client.ping()
    # redis-py's AuthenticationError and BusyLoadingError are ConnectionErrors: test them first.
    except redis.AuthenticationError as err:
        return AUTH, _auth_detail(target, err)
    except redis.BusyLoadingError as err:
        return LOADING, str(err) or "LOADING"
    except redis.ResponseError as err:
        if str(err).startswith(("NOAUTH", "WRONGPASS")):
            return AUTH, _auth_detail(target, err)
        return BAD, str(err)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as err:
        return DOWN, str(err) or type(err).__name__
    except redis.RedisError as err:  # a reply that is not Redis's
        return BAD, str(err) or type(err).__name__
    finally:
        client.close()
    return (UP, "PONG") if reply else (BAD, repr(reply))


def persistence(target: Target) -> tuple[bool | None, str]:
    """Ask the Redis how it persists. Returns (durable, what it does).

    durable is True with an append-only file, False without one (RDB snapshots alone lose
    what came after the last one), None when the Redis does not say (CONFIG refused).
    """
    client = target.client(2.0)
    try:
        appendonly = client.config_get("appendonly").get("appendonly", "")
        save = client.config_get("save").get("save", "")
        fsync = client.config_get("appendfsync").get("appendfsync", "")
    except redis.RedisError as err:
        return None, f"it does not say how it persists (CONFIG GET: {err})"
    finally:
        client.close()
    if appendonly == "yes":
        return True, f"it keeps an append-only file (appendfsync {fsync or '?'})"
    if save.strip():
        return False, (
            f'it has no append-only file, only RDB snapshots (save "{save}"): '
            "jobs queued since its last snapshot are lost if it crashes or is killed"
        )
    return False, (
        'it persists nothing (appendonly no, save ""): queued jobs and job state '
        "are lost whenever it restarts"
    )


def _persistence_fix() -> str:
    port = _local_port()
    return (
        "To keep them, either turn on its append-only file (redis-cli CONFIG SET appendonly "
        "yes, and appendonly yes in its redis.conf), or set REDIS_URL to a Redis that keeps "
        "one, or unset REDIS_URL (shell and .env) so `make run` starts its own "
        f"(password-protected, append-only, 127.0.0.1:{port}, data in var/redis)."
    )


def find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in (
        "/usr/bin/redis-server",
        "/usr/sbin/redis-server",
        "/usr/local/bin/redis-server",
        "/opt/homebrew/bin/redis-server",
    ):
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


def _config_value(value: str) -> str:
    """A redis.conf argument: double-quoted, with the escapes redis-server understands."""
    out = []
    for char in value:
        if char in '\\"':
            out.append("\\" + char)
        elif char.isprintable() and char.isascii():
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return '"' + "".join(out) + '"'


def server_config(target: Target, data_dir: Path) -> str:
    """The redis.conf of a Redis started here (given on stdin: it may hold the password)."""
    lines = []
    if target.socket_path:
        lines += ["port 0", f"unixsocket {_config_value(target.socket_path)}", "unixsocketperm 700"]
    else:
        lines += [f"bind {target.host}", f"port {target.port}"]
    lines += [
        'save ""',
        "appendonly yes",
        "appendfsync everysec",
        f"dir {_config_value(str(data_dir))}",
        "daemonize no",
    ]
    if target.password is not None:
        lines.append(f"requirepass {_config_value(target.password)}")
    return "\n".join(lines) + "\n"


def report_adopted(target: Target) -> None:
    """Say how the Redis we are adopting persists; warn when queued jobs would not survive."""
    durable, what = persistence(target)
    if durable:
        say(f"the Redis at {target.safe_url}: {what}, so queued jobs survive its restart")
        return
    bar = "!" * 78
    if durable is None:
        head = (
            "WARNING: cannot tell whether queued jobs would survive a restart of the Redis "
            f"at {target.safe_url}: {what}."
        )
    else:
        head = (
            f"WARNING: queued jobs would NOT survive a restart of the Redis at "
            f"{target.safe_url}: {what}."
        )
    for line in (bar, head, _persistence_fix(), bar):
        print(f"ensure_redis: {line}", file=sys.stderr, flush=True)


def serve(target: Target, data_dir: Path) -> NoReturn:
    state, detail = probe(target)
    if state in (UP, LOADING):
        say(
            f"Redis already answers at {target.safe_url}; not starting another "
            "(this entry idles until stopped)"
        )
        if state == UP:
            report_adopted(target)
        signal.signal(signal.SIGTERM, _exit_on_signal)
        signal.signal(signal.SIGINT, _exit_on_signal)
        while True:
            time.sleep(30)
            new_state, new_detail = probe(target)
            if new_state != state:
                say(f"Redis at {target.safe_url} is now {new_state}: {new_detail}")
                state = new_state
    if state == AUTH:
        die(
            f"a Redis answers at {target.where} but will not let REDIS_URL ({target.safe_url}) "
            f"in: {detail}"
        )
    if state == BAD:
        die(
            f"something at {target.where} answers but not as the Redis in REDIS_URL "
            f"({target.safe_url}) should: {detail}"
        )
    if not target.is_local():
        die(
            f"the Redis at {target.safe_url} does not answer ({detail}) and is not on this "
            "machine, so it cannot be started here"
        )
    server = find_redis_server()
    if server is None:
        die(MISSING_SERVER)
    if target.password is not None and target.username and target.username != "default":
        die("REDIS_URL names a user other than 'default'; set up that Redis yourself")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = server_config(target, data_dir)
    say(
        f"no Redis answers at {target.safe_url} ({detail}); starting {server} on "
        f"{target.where}{' with a password' if target.password is not None else ''}, "
        f"data in {data_dir}"
    )
    sys.stdout.flush()
    # The configuration goes in through a pipe on stdin (`redis-server -`), so the password is
    # never on a command line nor in another file. It is far smaller than a pipe's buffer.
    read_end, write_end = os.pipe()
    os.write(write_end, config.encode())
    os.close(write_end)
    os.dup2(read_end, 0)
    os.close(read_end)
    os.execv(server, [server, "-"])


def wait_for(target: Target, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    next_note = 0.0
    while True:
        state, detail = probe(target)
        if state == UP:
            return True
        if state == AUTH:
            die(
                f"the Redis at {target.where} will not let REDIS_URL ({target.safe_url}) in: "
                f"{detail}"
            )
        if state == BAD:
            die(f"Redis at {target.safe_url} answers with an error: {detail}")
        now = time.monotonic()
        if now >= deadline:
            print(
                f"ensure_redis: error: no Redis answered at {target.safe_url} within "
                f"{timeout:g}s (last: {detail})",
                file=sys.stderr,
                flush=True,
            )
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
            owner = int(run_dir.name[len("run-") :])
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


def _start_test_server(server: str, run_dir: Path) -> tuple[subprocess.Popen, str]:
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = run_dir / "redis.log"
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        process = subprocess.Popen(
            [
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
                str(log),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
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
    die(
        f"could not start a private redis-server for the tests; its log ({log}) ends:\n{last_error}"
    )


def _run(command: list[str], env: dict) -> int:
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


def with_test_redis(command: list[str]) -> int:
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
        say(
            f"warning: redis-server is not installed; tests use the Redis at "
            f"{target.safe_url} and may write to it"
        )
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


# --------------------------------------------------------------------------------------------
# make run: private files, and the stack's Redis


def _local_port() -> int:
    raw = os.environ.get("ATTENDANCE_LOCAL_REDIS_PORT") or _dotenv_value(
        "ATTENDANCE_LOCAL_REDIS_PORT"
    )
    if not raw:
        return LOCAL_PORT_DEFAULT
    try:
        port = int(raw)
    except ValueError:
        die(f"ATTENDANCE_LOCAL_REDIS_PORT={raw!r} is not a port number")
    if not 0 < port < 65536:
        die(f"ATTENDANCE_LOCAL_REDIS_PORT={raw!r} is not a port number")
    return port


def local_password() -> str:
    """The stack's Redis password, made on the first start in var/redis-password (0600)."""
    try:
        password = LOCAL_PASSWORD_FILE.read_text().strip()
    except FileNotFoundError:
        password = ""
    if password:
        return password
    LOCAL_PASSWORD_FILE.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    fd = os.open(LOCAL_PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(password + "\n")
    say(f"created a password for the stack's Redis in {LOCAL_PASSWORD_FILE}")
    return password


def local_url() -> str:
    return f"redis://:{quote(local_password(), safe='')}@127.0.0.1:{_local_port()}/0"


def make_private(root: Path) -> None:
    """Take group and other permissions off ``root`` and everything under it (not symlinks)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            with contextlib.suppress(OSError):  # gone meanwhile (a parallel make test)
                mode = os.lstat(name).st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    os.chmod(name, stat.S_IMODE(mode) & ~0o077)


def stack(command: list[str]) -> NoReturn:
    if not command:
        die("--stack needs a command after --")
    os.umask(0o077)
    make_private(VAR_DIR)
    user_url = os.environ.get("REDIS_URL") or _dotenv_value("REDIS_URL")
    if user_url:
        try:
            safe = Target(user_url).safe_url
        except ValueError as err:
            die(str(err))
        say(f"the stack uses your REDIS_URL={safe} as it is")
    else:
        os.environ["REDIS_URL"] = local_url()
        say(
            f"the stack uses its own Redis at {Target(os.environ['REDIS_URL']).safe_url}; "
            f"its password is in {LOCAL_PASSWORD_FILE} (set REDIS_URL to use another Redis)"
        )
    sys.stdout.flush()
    try:
        os.execvp(command[0], command)
    except OSError as err:
        die(f"cannot run {command[0]}: {err}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring for the modes.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=60.0,
        metavar="SECONDS",
        help="wait until Redis answers (default 60 s), then exec the command after --",
    )
    mode.add_argument(
        "--with-test-redis",
        action="store_true",
        help="run the command after -- against a Redis for tests",
    )
    mode.add_argument("--ping", action="store_true", help="exit 0 if Redis answers PING")
    mode.add_argument(
        "--stack",
        action="store_true",
        help="make var/ private, pick the stack's Redis (REDIS_URL), then exec "
        "the command after --",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where a Redis started here keeps its append-only file (default: var/redis)",
    )
    args = parser.parse_args(argv)

    if args.with_test_redis:
        return with_test_redis(command)
    if args.stack:
        stack(command)
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
