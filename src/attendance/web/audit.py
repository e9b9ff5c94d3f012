"""The audit log: who enrolled, deleted or exported what. Readable by admins only."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, request

from attendance.domain.auth import Role
from attendance.domain.errors import ValidationFailed
from attendance.domain.schemas import AuditEntry
from attendance.web.auth import current_principal, requires
from attendance.web.context import services

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")
MAX_LIMIT = 1000


def audit(action: str, target: str, **detail) -> None:
    services().records.append_audit(
        AuditEntry(
            at=dt.datetime.now(dt.UTC),
            actor=current_principal().name,
            action=action,
            target=target,
            detail=detail,
        )
    )


@bp.get("")
@requires(Role.admin)
def list_audit():
    raw = request.args.get("limit", "100")
    # isascii: str.isdigit() is also true of "²", which int() refuses (a 500), and of "٣".
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be a whole number from 1 to {MAX_LIMIT}", code="invalid_limit"
        )
    entries = services().records.list_audit(int(raw))
    return jsonify({"entries": [e.model_dump(mode="json") for e in entries]})
