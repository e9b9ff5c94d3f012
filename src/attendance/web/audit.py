"""The audit log: who enrolled, deleted or exported what. Readable by admins only."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, request

from attendance.domain.api_shapes import MAX_AUDIT_LIMIT, AuditList, AuditQuery
from attendance.domain.auth import Role
from attendance.domain.errors import ValidationFailed
from attendance.domain.schemas import AuditEntry
from attendance.web.apidoc import Reply, operation
from attendance.web.auth import current_principal, requires
from attendance.web.context import services

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")
MAX_LIMIT = MAX_AUDIT_LIMIT


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
@operation(
    "listAudit",
    "The audit log (enrollments, deletions, exports), newest first.",
    query=AuditQuery,
    replies={200: Reply("Entries.", AuditList)},
    errors={400: "Invalid limit."},
)
def list_audit():
    raw = request.args.get("limit", "100")
    # isascii: str.isdigit() is also true of "²", which int() refuses (a 500), and of "٣".
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be a whole number from 1 to {MAX_LIMIT}", code="invalid_limit"
        )
    entries = services().records.list_audit(int(raw))
    return jsonify(AuditList(entries=entries).model_dump(mode="json"))
