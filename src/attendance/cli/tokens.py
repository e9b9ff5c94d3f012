"""API tokens and local credentials.

attendance-tokens create NAME ROLE [--classes room-1,room-2]
    Create a token (admin, teacher or viewer), store its hash in the tokens file
    (ATTENDANCE_API_TOKENS_FILE, default var/tokens.json) and print the token once.
attendance-tokens revoke NAME
    Remove a token from the tokens file. The API reads the file again when it changes, so a
    created or revoked token counts from the next request, with no restart.
attendance-tokens list
    The tokens in the file: name, role and classes (never the tokens, which are not kept).
attendance-tokens init-local
    What `make run` does on every start: on the first, create a local admin token
    (var/admin-token), Flower's basic-auth credentials (var/flower-credentials) and, when no
    account exists, the account 'admin' (its password in var/admin-password), all readable by
    their owner only; afterwards, say where they are.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from attendance.config.settings import get_settings
from attendance.domain.accounts import ROLES, NewAccount
from attendance.domain.auth import add_token, revoke_token, token_names
from attendance.domain.errors import AppError
from attendance.services.accounts import create_account
from attendance.stores.records import open_records

ADMIN_TOKEN_FILE = Path("var/admin-token")
FLOWER_CREDENTIALS_FILE = Path("var/flower-credentials")
ADMIN_PASSWORD_FILE = Path("var/admin-password")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _init_local_admin_account() -> None:
    """A first admin account to log in with, when there is none (its password in a file only
    its owner reads): people log in with it and make the others in the app."""
    settings = get_settings()
    try:
        records = open_records(settings.records_url, settings)
        if records.list_accounts():
            if ADMIN_PASSWORD_FILE.is_file():
                print(
                    f"tokens: log in as 'admin' with the password in {ADMIN_PASSWORD_FILE.resolve()}"
                )
            return
        password = secrets.token_urlsafe(12)
        request = NewAccount(username="admin", password=password, role="admin")
        create_account(records, request, "make run")
    except AppError as exc:
        print(f"tokens: no local admin account ({exc.message})", file=sys.stderr)
        return
    _write_private(ADMIN_PASSWORD_FILE, password + "\n")
    print(
        f"tokens: created the account 'admin'; its password is in {ADMIN_PASSWORD_FILE.resolve()}"
    )


def init_local() -> None:
    _init_local_admin_account()
    tokens_file = get_settings().api_tokens_file
    if not ADMIN_TOKEN_FILE.is_file():
        token = add_token(tokens_file, f"local-admin-{secrets.token_hex(3)}", "admin")
        _write_private(ADMIN_TOKEN_FILE, token + "\n")
        print(f"tokens: created a local admin API token in {ADMIN_TOKEN_FILE.resolve()}")
    else:
        print(f"tokens: the local admin API token is in {ADMIN_TOKEN_FILE.resolve()}")
    if not FLOWER_CREDENTIALS_FILE.is_file():
        _write_private(FLOWER_CREDENTIALS_FILE, f"admin:{secrets.token_urlsafe(18)}\n")
    print(f"tokens: Flower's user:password is in {FLOWER_CREDENTIALS_FILE.resolve()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create")
    create.add_argument("name")
    create.add_argument("role", choices=ROLES)
    create.add_argument("--classes", help="comma-separated classes a teacher is limited to")
    revoke = sub.add_parser("revoke")
    revoke.add_argument("name")
    sub.add_parser("list")
    sub.add_parser("init-local")
    args = parser.parse_args(argv)
    path = get_settings().api_tokens_file
    if args.command == "init-local":
        init_local()
        return 0
    if args.command == "list":
        for entry in token_names(path):
            scope = ",".join(entry.classes) if entry.classes is not None else "all classes"
            print(f"{entry.name}\t{entry.role}\t{scope}")
        return 0
    if args.command == "revoke":
        try:
            revoke_token(path, args.name)
        except ValueError as exc:
            print(f"tokens: {exc}", file=sys.stderr)
            return 1
        print(f"tokens: revoked {args.name}")
        return 0
    classes = [c for c in args.classes.split(",") if c] if args.classes else None
    try:
        token = add_token(path, args.name, args.role, classes)
    except ValueError as exc:
        print(f"tokens: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
