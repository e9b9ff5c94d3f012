"""People's accounts, from the command line (the same as an admin does in the app).

attendance-accounts create USERNAME ROLE [--classes room-1,room-2] [--email ADDRESS]
    Create an account (admin, teacher or viewer); the password is read from the terminal, or
    from standard input with --password-stdin; with --email and --no-password the account logs
    in through the school's identity provider only.
attendance-accounts set-email USERNAME ADDRESS  the email its identity-provider login verifies
                                                ('' removes it)
attendance-accounts reset-password USERNAME    a new password (its sessions end)
attendance-accounts disable USERNAME           no more logins (its sessions end)
attendance-accounts enable USERNAME
attendance-accounts list                       username, role, classes, state, email

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
    create.add_argument("--email", help="the address a login through the identity provider has")
    create.add_argument(
        "--no-password", action="store_true", help="with --email: identity-provider logins only"
    )
    set_email = sub.add_parser("set-email")
    set_email.add_argument("username")
    set_email.add_argument("email")
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
                print(f"{a.username}\t{a.role}\t{scope}\t{state}\t{a.email or ''}")
        elif args.command == "create":
            classes = [c for c in args.classes.split(",") if c] if args.classes else None
            request = NewAccount(
                username=args.username,
                password=None if args.no_password else _password(args.password_stdin),
                email=args.email,
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
                "set-email": lambda: AccountChange(email=args.email),
            }[args.command]()
            ends_sessions = args.command in ("reset-password", "disable")
            sessions = _sessions(settings) if ends_sessions else None
            change_account(records, sessions, args.username, change, ACTOR)
            print(f"accounts: {args.command} {args.username}: done")
    except ValidationError as exc:
        for error in exc.errors():
            where = f"{error['loc'][0]}: " if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            print(f"accounts: {where}{message}", file=sys.stderr)
        return 1
    except AppError as exc:
        print(f"accounts: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
