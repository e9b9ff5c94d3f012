"""Make sure a Redis is there for the stack or the tests (attendance-redis).

Modes (the Redis is the one at ``$REDIS_URL``, else ``REDIS_URL`` in ``.env``, else
``redis://127.0.0.1:6379/0``):

``attendance-redis --stack -- COMMAND ...``
    What ``make run`` runs honcho with. Sets the umask to 077 and takes group and other
    permissions off everything under ``var/`` (so the database, stores, logs and credentials
    are the owner's only), then picks the stack's Redis and execs COMMAND. If the user set
    ``REDIS_URL`` (environment or ``.env``) that one is used as it is. Otherwise the stack gets
    its own password-protected Redis: ``REDIS_URL=redis://:PASSWORD@127.0.0.1:PORT/0``, the
    password in ``var/redis-password`` (mode 0600, made on the first start), PORT
    ``$ATTENDANCE_LOCAL_REDIS_PORT`` (default 6380, so it never meets a Redis the machine
    already runs on 6379). The password reaches the processes through their environment only.
    (attendance.cli.stack_redis)

``attendance-redis``
    Serve. If that Redis answers PING, adopt it: ask it for its persistence (``CONFIG GET
    appendonly`` / ``save``) and warn, with the fix, when queued jobs would not survive its
    restart; then keep running quietly (so a process manager does not take this entry for dead)
    until SIGTERM/SIGINT, then exit 0. A Redis that wants another password, or none, is an
    error that says so. Otherwise, if the URL is on this machine, exec ``redis-server`` in the
    foreground on its host and port, its configuration (with ``requirepass`` when the URL has a
    password) given on stdin, never on its command line. Persistence: no RDB snapshots but an
    append-only file (fsync every second) under ``var/redis`` (``--data-dir`` to change), so
    queued jobs and job state survive a restart of the stack; ``make clean`` removes it.

``attendance-redis --wait [SECONDS] [-- COMMAND ...]``
    Wait (default 60 s) until that Redis answers PING, then exec COMMAND (or exit 0).
    Exit 1 if it does not answer in time or refuses the password.

``attendance-redis --with-test-redis -- COMMAND ...``
    Run COMMAND with ``REDIS_URL`` and ``ATTENDANCE_TEST_REDIS_URL`` pointing at a Redis meant
    for tests, and exit with COMMAND's status: ``$ATTENDANCE_TEST_REDIS_URL`` if set and
    answering, else a private throw-away ``redis-server`` (attendance.cli.throwaway_redis).

``attendance-redis --ping``
    Exit 0 if that Redis answers PING, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

from attendance.cli.env_file import REPO_ROOT, VAR_DIR
from attendance.cli.redis_probe import (
    AUTH,
    BAD,
    LOADING,
    MISSING_SERVER,
    UP,
    Target,
    configured_url,
    die,
    find_redis_server,
    persistence,
    probe,
    say,
    warn,
)
from attendance.cli.stack_redis import persistence_fix, stack
from attendance.cli.throwaway_redis import with_test_redis

DEFAULT_DATA_DIR = VAR_DIR / "redis"


# --------------------------------------------------------------------------------------------
# Serve: adopt the Redis that answers, or start one here


def _exit_on_signal(signum: int, _frame: FrameType | None) -> NoReturn:
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
    for line in (bar, head, persistence_fix(), bar):
        warn(line)


def _idle_beside(target: Target, state: str) -> NoReturn:
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


def _exec_server(target: Target, data_dir: Path, detail: str) -> NoReturn:
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


def serve(target: Target, data_dir: Path) -> NoReturn:
    state, detail = probe(target)
    if state in (UP, LOADING):
        _idle_beside(target, state)
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
    _exec_server(target, data_dir, detail)


# --------------------------------------------------------------------------------------------
# Wait


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
            warn(
                f"error: no Redis answered at {target.safe_url} within {timeout:g}s "
                f"(last: {detail})"
            )
            return False
        if now >= next_note:
            say(f"waiting for Redis at {target.safe_url} ({state}: {detail})")
            next_note = now + 10
        time.sleep(0.25)


def _exec(command: list[str]) -> NoReturn:
    try:
        os.execvp(command[0], command)
    except OSError as err:
        die(f"cannot run {command[0]}: {err}")


# --------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
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
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = _parser().parse_args(argv)

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
        _exec(command)
    data_dir = args.data_dir if args.data_dir.is_absolute() else REPO_ROOT / args.data_dir
    serve(target, data_dir)


if __name__ == "__main__":
    sys.exit(main())
