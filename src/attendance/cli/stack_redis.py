"""``attendance-redis --stack`` (what `make run` runs honcho with): everything under var/ made
the owner's only, and the stack's Redis picked: the user's ``REDIS_URL`` as it is, or else the
stack's own password-protected one on 127.0.0.1 (password in var/redis-password, mode 0600)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from attendance.cli.env_file import VAR_DIR, setting
from attendance.cli.redis_probe import Target, die, say

LOCAL_PASSWORD_FILE = VAR_DIR / "redis-password"
LOCAL_PORT_DEFAULT = 6380  # so it never meets a Redis the machine already runs on 6379
LOCAL_PORT_ENV = "ATTENDANCE_LOCAL_REDIS_PORT"


def local_port() -> int:
    raw = setting(LOCAL_PORT_ENV)
    if not raw:
        return LOCAL_PORT_DEFAULT
    try:
        port = int(raw)
    except ValueError:
        die(f"{LOCAL_PORT_ENV}={raw!r} is not a port number")
    if not 0 < port < 65536:
        die(f"{LOCAL_PORT_ENV}={raw!r} is not a port number")
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
    return f"redis://:{quote(local_password(), safe='')}@127.0.0.1:{local_port()}/0"


def persistence_fix() -> str:
    """What to do about a Redis whose queued jobs would not survive its restart."""
    return (
        "To keep them, either turn on its append-only file (redis-cli CONFIG SET appendonly "
        "yes, and appendonly yes in its redis.conf), or set REDIS_URL to a Redis that keeps "
        "one, or unset REDIS_URL (shell and .env) so `make run` starts its own "
        f"(password-protected, append-only, 127.0.0.1:{local_port()}, data in var/redis)."
    )


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
    """Make var/ private, set the stack's REDIS_URL (the user's, or its own), exec ``command``."""
    if not command:
        die("--stack needs a command after --")
    os.umask(0o077)
    make_private(VAR_DIR)
    user_url = setting("REDIS_URL")
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
