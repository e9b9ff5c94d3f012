"""API tokens and local credentials.

attendance-tokens create NAME ROLE [--classes room-1,room-2]
    Create a token (admin, teacher or viewer), store its hash in the tokens file
    (ATTENDANCE_API_TOKENS_FILE, default var/tokens.json) and print the token once.
attendance-tokens init-local
    What `make run` does on every start: on the first, create a local admin token
    (var/admin-token) and Flower's basic-auth credentials (var/flower-credentials), both
    readable by their owner only; afterwards, say where they are.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from attendance.config.settings import get_settings
from attendance.domain.auth import add_token

ADMIN_TOKEN_FILE = Path("var/admin-token")
FLOWER_CREDENTIALS_FILE = Path("var/flower-credentials")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def init_local() -> None:
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
    create.add_argument("role", choices=["admin", "teacher", "viewer"])
    create.add_argument("--classes", help="comma-separated classes a teacher is limited to")
    sub.add_parser("init-local")
    args = parser.parse_args(argv)
    if args.command == "init-local":
        init_local()
        return 0
    classes = [c for c in args.classes.split(",") if c] if args.classes else None
    try:
        token = add_token(get_settings().api_tokens_file, args.name, args.role, classes)
    except ValueError as exc:
        print(f"tokens: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
