"""People's accounts, from the command line (the same as an admin does in the app).

attendance-accounts create USERNAME ROLE [--classes room-1,room-2]
    Create an account (admin, teacher or viewer); the password is read from the terminal, or
    from standard input with --password-stdin.
attendance-accounts reset-password USERNAME    a new password (its sessions end)
attendance-accounts disable USERNAME           no more logins (its sessions end)
attendance-accounts enable USERNAME
attendance-accounts list                       username, role, classes, disabled

The accounts live in the records store (ATTENDANCE_RECORDS_URL); sessions, in Redis, are ended
when Redis answers (else they end when they expire).
"""

from __future__ import annotations

import argparse
import getpass
import sys

import redis
from pydantic import ValidationError

from attendance.config.settings import get_settings
from attendance.domain.accounts import ROLES, AccountChange, NewAccount
from attendance.domain.errors import AppError
from attendance.services.accounts import change_account, create_account
from attendance.stores.records import open_records
from attendance.stores.sessions import SessionStore

ACTOR = "command line"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AppError("the two passwords differ", code="password_mismatch")
    return first


def _sessions(settings) -> SessionStore | None:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        print("accounts: Redis does not answer; existing sessions end when they expire")
        return None
    return SessionStore(client, settings.session_hours * 3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create")
    create.add_argument("username")
    create.add_argument("role", choices=ROLES)
    create.add_argument("--classes", help="comma-separated classes the account is limited to")
    create.add_argument("--password-stdin", action="store_true")
    reset = sub.add_parser("reset-password")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true")
    for name in ("disable", "enable"):
        sub.add_parser(name).add_argument("username")
    sub.add_parser("list")
    args = parser.parse_args(argv)

    settings = get_settings()
    records = open_records(settings.records_url, settings)
    try:
        if args.command == "list":
            for a in records.list_accounts():
                scope = ",".join(a.classes) if a.classes is not None else "all classes"
                state = "disabled" if a.disabled else "active"
                print(f"{a.username}\t{a.role}\t{scope}\t{state}")
        elif args.command == "create":
            classes = [c for c in args.classes.split(",") if c] if args.classes else None
            request = NewAccount(
                username=args.username,
                password=_password(args.password_stdin),
                role=args.role,
                classes=classes,
            )
            create_account(records, request, ACTOR)
            print(f"accounts: created {args.username} ({args.role})")
        else:
            change = {
                "reset-password": lambda: AccountChange(password=_password(args.password_stdin)),
                "disable": lambda: AccountChange(disabled=True),
                "enable": lambda: AccountChange(disabled=False),
            }[args.command]()
            sessions = _sessions(settings) if args.command != "enable" else None
            change_account(records, sessions, args.username, change, ACTOR)
            print(f"accounts: {args.command} {args.username}: done")
    except ValidationError as exc:
        for error in exc.errors():
            print(f"accounts: {error['loc'][0]}: {error['msg']}", file=sys.stderr)
        return 1
    except AppError as exc:
        print(f"accounts: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
