"""The OpenAPI 3.0 description of every route, served at /api/v1/openapi.json.

Written by hand (pydantic emits JSON Schema 2020-12, which OpenAPI 3.0 does not accept); a unit
test keeps the component schemas in step with attendance.domain.schemas and the paths with the URL map.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from attendance.config.settings import Settings
from attendance.domain.accounts import (
    CONTROL_CHARACTERS,
    EMAIL_PATTERN,
    MAX_PASSWORD,
    MIN_PASSWORD,
    USERNAME_RE,
)
from attendance.domain.accounts import ROLES as ACCOUNT_ROLES
from attendance.domain.consent import RELATIONSHIPS as CONSENT_RELATIONSHIPS
from attendance.domain.exports import XLSX_MIMETYPE
from attendance.domain.reports import AbsenceRow
from attendance.domain.schemas import MAX_NAME_LENGTH, PERIOD_RE, STUDENT_ID_RE
from attendance.web.audit import MAX_LIMIT as AUDIT_MAX_LIMIT
from attendance.web.auth import public
from attendance.web.context import services
from attendance.web.routes.docs import ASSETS as DOCS_ASSETS

bp = Blueprint("openapi", __name__)

# JSON Schema patterns search unanchored: anchor the identifier rule.
IDENTIFIER_PATTERN = f"^{STUDENT_ID_RE.pattern}$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# Empty is the whole day's register.
PERIOD_PATTERN = f"^({PERIOD_RE.pattern})?$"
STATUSES = ["present", "late", "excused", "absent"]
SOURCES = ["face", "manual"]
MAX_NOTE_LENGTH = 500
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
# str.isprintable() cannot be written as an ECMA-262 pattern; this excludes the control, format,
# separator and private-use characters of the BMP (lone surrogates cannot be sent as UTF-8) and
# demands one visible character. validate_name stays the authority.
_UNPRINTABLE = (
    r"\x00-\x1f\x7f-\xa0\xad\u1680\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000"
    r"\ue000-\uf8ff\ufeff\ufff0-\ufffb"
)
NAME_PATTERN = rf"^[^{_UNPRINTABLE}]*[^\s{_UNPRINTABLE}][^{_UNPRINTABLE}]*$"
USERNAME_PATTERN = USERNAME_RE.pattern
PUBLIC_PATHS = (
    "/api/v1/sessions",
    "/healthz",
    "/readyz",
    "/api/v1/openapi.json",
    "/api/v1/docs",
    "/api/v1/docs/{asset}",
)
IMAGE_TYPES = (
    "image/jpeg, image/png, image/webp, image/bmp, image/tiff, image/gif, image/heic, image/heif"
)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


def _identifier(description: str) -> dict:
    return {
        "type": "string",
        "pattern": IDENTIFIER_PATTERN,
        "minLength": 1,
        "maxLength": 64,
        "description": description,
    }


def _date(description: str) -> dict:
    return {"type": "string", "format": "date", "pattern": DATE_PATTERN, "description": description}


def _period(description: str) -> dict:
    return {
        "type": "string",
        "pattern": PERIOD_PATTERN,
        "maxLength": 32,
        "description": description,
    }


def _query(name: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _path(name: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _photos(max_items: int) -> dict:
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": max_items,
        "items": {"type": "string", "format": "binary"},
        "description": f"1 to {max_items} image files ({IMAGE_TYPES}).",
    }


def _multipart(properties: dict, required: list[str]) -> dict:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": properties, "required": required},
                "encoding": {"photos": {"contentType": IMAGE_TYPES}},
            }
        },
    }


def _consent_fields() -> dict:
    """The consent an enrollment may bring (form fields) and PUT .../consent takes (JSON)."""
    return {
        "consent_given_by": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
            "pattern": NAME_PATTERN,
            "description": "Who gave the consent (a name).",
        },
        "consent_relationship": {
            "type": "string",
            "enum": list(CONSENT_RELATIONSHIPS),
            "description": "Their relationship to the student; a minor's consent comes from a "
            "parent or guardian.",
        },
        "consent_given_on": _date("When it was given; not in the future."),
        "minor": {
            "type": "string",
            "enum": ["true", "false"],
            "default": "true",
            "description": "Whether the student is a minor.",
        },
    }


def _json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _password() -> dict:
    return {
        "type": "string",
        "minLength": MIN_PASSWORD,
        "maxLength": MAX_PASSWORD,
        "pattern": f"^[^{CONTROL_CHARACTERS}]*$",
        "description": f"{MIN_PASSWORD} to {MAX_PASSWORD} characters, spaces allowed.",
    }


def _account_classes(description: str) -> dict:
    return {
        "type": "array",
        "items": {"type": "string", "pattern": IDENTIFIER_PATTERN, "maxLength": 64},
        "maxItems": 200,
        "nullable": True,
        "description": description,
    }


def _accepted() -> dict:
    # Only the job exists when 202 is sent; the student appears when a worker has run it, so a
    # link to GET /students/{student_id} would promise what is not there yet.
    return {
        **_json(_ref("JobAccepted"), "Queued; poll status_url."),
        "links": {
            "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/job_id"}}
        },
    }


_COMMON_ERRORS = {"default": _error("Any other error, in the same shape.")}
_UPLOAD_ERRORS = {
    "400": _error(
        "A missing or invalid field, a file that is not a whole single-frame image, "
        "or a photos part that arrived as text (photos_part_not_a_file)."
    ),
    "413": _error(
        "Too large, by code: payload_too_large (the body is over the upload limit), "
        "request_too_large (the photos declare more pixels in all than a request may; "
        "checked before any is decoded), form_field_too_large (a text field over the "
        "form's limit), too_many_form_parts. Nothing was stored."
    ),
    "415": _error("The body is not multipart/form-data."),
    "503": _error(
        "Redis (service_unavailable) or the blob store (store_unavailable) is "
        "unavailable; nothing was stored."
    ),
}


def _mark_operation(class_id: dict, date: dict, period: dict, student_id: dict | None) -> dict:
    """PUT of a student's mark. ``student_id`` None: of the student whose id is "finalize", whose
    URL is the sign-off's (a concrete path is read before a templated one)."""
    parameters = [_path("class_id", class_id), _path("date", date)]
    operation_id, prefix = "markAttendanceOfFinalize", 'The student whose id is "finalize": '
    if student_id is not None:
        parameters.append(_path("student_id", student_id))
        operation_id, prefix = "markAttendance", ""
    body = {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": STATUSES},
            "period": period,
            "note": {"type": "string", "nullable": True, "maxLength": MAX_NOTE_LENGTH},
        },
    }
    return {
        "operationId": operation_id,
        "summary": prefix
        + "Mark a student by hand (teacher of the class or admin; audited). It replaces a "
        "face's mark, and a later photo never replaces it. On a signed-off register only an "
        "admin may, as an audited correction.",
        "parameters": parameters,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": _json(_ref("MarkResult"), "The student's row before and after."),
            "400": _error("An invalid id, date, status, period, note or field."),
            "404": _error(
                "No such student (unknown_student), or not enrolled in class_id "
                "(student_not_in_class)."
            ),
            "409": _error("The register is signed off (register_finalized)."),
            "415": _error("The body is not a JSON object."),
            **_COMMON_ERRORS,
        },
    }


# null, as OpenAPI 3.0.3 can say it: `nullable` beside a $ref (or an allOf without a type)
# admits nothing more.
def _report_operation(
    operation_id: str, summary: str, subject: dict, schema: str, not_found: str
) -> dict:
    return {
        "operationId": operation_id,
        "summary": summary + " A session is a register held: one with a mark, or signed off.",
        "parameters": [
            subject,
            _query("from", _date("First day, inclusive (default: 29 days before to).")),
            _query("to", _date("Last day, inclusive (default: today); at most 366 days.")),
            _query("format", {"type": "string", "enum": ["json", "csv", "xlsx"]}),
        ],
        "responses": {
            "200": {
                "description": "The report (format=csv or xlsx: an audited export, teacher and "
                "up).",
                "content": {
                    "application/json": {"schema": _ref(schema)},
                    "text/csv": {"schema": {"type": "string"}},
                    XLSX_MIMETYPE: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "400": _error("An invalid id, date, range or format."),
            "403": _error("An export by a viewer, or a class the token may not see."),
            "404": _error(not_found),
            **_COMMON_ERRORS,
        },
    }


_NULL = {"type": "object", "nullable": True, "enum": [None]}


def _evidence_properties(nullable_datetime: dict) -> dict:
    """Which face of the job is a mark's evidence."""
    return {
        "photo": {
            "type": "integer",
            "nullable": True,
            "description": "The evidence photo's index in the job.",
        },
        "face": {
            "type": "integer",
            "nullable": True,
            "description": "The face's index among that photo's faces.",
        },
        "box": {
            "anyOf": [_ref("Box"), _NULL],
            "description": "The face in the original photo's pixels.",
        },
        "captured_at": {
            **nullable_datetime,
            "description": "When the camera took the photo (EXIF; without an offset when the "
            "camera wrote none).",
        },
    }


def _schemas() -> dict:
    nullable_datetime = {"type": "string", "format": "date-time", "nullable": True}
    return {
        "Erasure": {
            "type": "object",
            "required": [
                "student_id",
                "embeddings_removed",
                "photos_removed",
                "attendance_removed",
                "model_version",
            ],
            "properties": {
                "student_id": {"type": "string"},
                "embeddings_removed": {"type": "integer"},
                "photos_removed": {"type": "integer"},
                "attendance_removed": {"type": "integer"},
                "model_version": {"type": "integer"},
            },
        },
        "AuditList": {
            "type": "object",
            "required": ["entries"],
            "properties": {
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["at", "actor", "action", "target", "detail"],
                        "properties": {
                            "at": {"type": "string", "format": "date-time"},
                            "actor": {"type": "string"},
                            "action": {"type": "string"},
                            "target": {"type": "string"},
                            "detail": {"type": "object"},
                        },
                    },
                }
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": _ref("ErrorBody")},
        },
        "ErrorBody": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "JobAccepted": {
            "type": "object",
            "required": ["job_id", "status_url"],
            "properties": {
                "job_id": {"type": "string", "pattern": JOB_ID_PATTERN},
                "status_url": {"type": "string"},
            },
        },
        "Progress": {
            "type": "object",
            "required": ["done", "total"],
            "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
        },
        "JobView": {
            "type": "object",
            "required": ["job_id", "kind", "state", "progress", "created_at", "updated_at"],
            "properties": {
                "job_id": {"type": "string"},
                "kind": {"type": "string", "enum": ["enrollment", "recognition"]},
                "class_id": {
                    "type": "string",
                    "nullable": True,
                    "description": "The class the job is for (who may read it).",
                },
                "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
                "progress": _ref("Progress"),
                "result": {
                    "type": "object",
                    "nullable": True,
                    "additionalProperties": True,
                    "description": "EnrollmentResult, RecognitionResult or (POST "
                    "/api/v1/model/reembed) ReembedResult once succeeded.",
                },
                # $ref cannot be nullable in 3.0: siblings of $ref are ignored.
                "error": {"allOf": [_ref("ErrorBody")], "nullable": True},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "Student": {
            "type": "object",
            "required": ["student_id", "name", "class_ids", "embeddings"],
            "properties": {
                "student_id": {"type": "string"},
                "name": {"type": "string"},
                "class_ids": {"type": "array", "items": {"type": "string"}},
                "embeddings": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Face embeddings in the current gallery, of "
                    "the current pipeline.",
                },
                "consent": {
                    "allOf": [_ref("Consent")],
                    "nullable": True,
                    "description": "The consent on record; null: never given.",
                },
                "face_data": {
                    "type": "boolean",
                    "description": "Whether any face data (embeddings of any pipeline) is held.",
                },
            },
        },
        "Consent": {
            "type": "object",
            "required": [
                "student_id",
                "given_by",
                "relationship",
                "given_on",
                "minor",
                "recorded_by",
                "recorded_at",
            ],
            "properties": {
                "student_id": {"type": "string"},
                "given_by": {"type": "string", "description": "Who gave the consent."},
                "relationship": {"type": "string", "enum": list(CONSENT_RELATIONSHIPS)},
                "given_on": {"type": "string", "format": "date"},
                "minor": {"type": "boolean"},
                "recorded_by": {"type": "string", "description": "The API token that recorded it."},
                "recorded_at": {"type": "string", "format": "date-time"},
                "withdrawn_at": {"type": "string", "format": "date-time", "nullable": True},
                "withdrawn_by": {"type": "string", "nullable": True},
            },
        },
        "ConsentWithdrawal": {
            "type": "object",
            "required": [
                "student_id",
                "consent",
                "embeddings_removed",
                "photos_removed",
                "model_version",
            ],
            "properties": {
                "student_id": {"type": "string"},
                "consent": {"allOf": [_ref("Consent")], "nullable": True},
                "embeddings_removed": {"type": "integer"},
                "photos_removed": {"type": "integer"},
                "model_version": {"type": "integer"},
            },
        },
        "StudentList": {
            "type": "object",
            "required": ["students"],
            "properties": {"students": {"type": "array", "items": _ref("Student")}},
        },
        "AttendanceRecord": {
            "type": "object",
            "required": [
                "class_id",
                "date",
                "period",
                "student_id",
                "name",
                "first_seen_at",
                "status",
                "source",
            ],
            "properties": {
                "class_id": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                "period": {"type": "string", "description": "Empty: the whole day."},
                "student_id": {"type": "string"},
                "name": {"type": "string"},
                "first_seen_at": {"type": "string", "format": "date-time"},
                "distance": {
                    "type": "number",
                    "nullable": True,
                    "description": "A face mark's cosine distance.",
                },
                "job_id": {
                    "type": "string",
                    "nullable": True,
                    "description": "The recognition job of a face mark.",
                },
                "status": {"type": "string", "enum": STATUSES},
                "source": {"type": "string", "enum": SOURCES},
                "marked_by": {"type": "string", "nullable": True},
                "marked_at": nullable_datetime,
                "note": {"type": "string", "nullable": True},
                **_evidence_properties(nullable_datetime),
            },
        },
        "RegisterRow": {
            "type": "object",
            "required": ["student_id", "name", "status", "source"],
            "properties": {
                "student_id": {"type": "string"},
                "name": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES},
                "source": {
                    "type": "string",
                    # A nullable enum admits null only when it lists it (OpenAPI 3.0.3).
                    "enum": [*SOURCES, None],
                    "nullable": True,
                    "description": "What marked the student; null: nothing did (absent).",
                },
                "marked_by": {"type": "string", "nullable": True},
                "marked_at": nullable_datetime,
                "note": {"type": "string", "nullable": True},
                "job_id": {"type": "string", "nullable": True},
                "distance": {"type": "number", "nullable": True},
                **_evidence_properties(nullable_datetime),
                "match_quality": {
                    "type": "string",
                    "enum": ["strong", "borderline", None],
                    "nullable": True,
                    "description": "The evidence's distance against the match threshold: "
                    "strong (within 0.8 of it) or borderline; null without a distance.",
                },
            },
        },
        "Box": {
            "type": "object",
            "required": ["x", "y", "w", "h"],
            "properties": {
                "x": {"type": "integer"},
                "y": {"type": "integer"},
                "w": {"type": "integer"},
                "h": {"type": "integer"},
            },
        },
        "FaceMatch": {
            "type": "object",
            "required": ["box", "student_id", "name", "distance", "outcome"],
            "properties": {
                "box": _ref("Box"),
                "student_id": {"type": "string", "nullable": True},
                "name": {"type": "string", "nullable": True},
                "distance": {"type": "number", "nullable": True},
                "outcome": {
                    "type": "string",
                    "enum": ["recognised", "unknown", "unidentifiable", "assigned", "rejected"],
                    "description": "assigned, rejected: settled by a teacher (settled_by).",
                },
                "reason": {"type": "string", "nullable": True},
                "settled_by": {"type": "string", "nullable": True},
            },
        },
        "SettledFace": {
            "type": "object",
            "required": ["row", "face", "learn_job_id", "learn_status_url"],
            "properties": {
                "row": {
                    "anyOf": [_ref("RegisterRow"), _NULL],
                    "description": "The register's row of the student concerned after the "
                    "change; null: the face matched nobody and was rejected.",
                },
                "face": _ref("FaceMatch"),
                "learn_job_id": {"type": "string", "nullable": True, "pattern": JOB_ID_PATTERN},
                "learn_status_url": {"type": "string", "nullable": True},
            },
        },
        "RegisterLock": {
            "type": "object",
            "required": ["class_id", "date", "period", "finalized_by", "finalized_at"],
            "properties": {
                "class_id": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                "period": {"type": "string"},
                "finalized_by": {"type": "string"},
                "finalized_at": {"type": "string", "format": "date-time"},
            },
        },
        "Register": {
            "type": "object",
            "required": ["class_id", "date", "period", "finalized", "rows"],
            "properties": {
                "class_id": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                "period": {"type": "string"},
                "finalized": {
                    "anyOf": [_ref("RegisterLock"), _NULL],
                    "description": "Who signed the register off and when; null: not yet.",
                },
                "rows": {
                    "type": "array",
                    "items": _ref("RegisterRow"),
                    "description": "Every student enrolled in the class, by name.",
                },
            },
        },
        "MarkResult": {
            "type": "object",
            "required": ["before", "after"],
            "properties": {
                "before": {
                    "anyOf": [_ref("RegisterRow"), _NULL],
                    "description": "The row as it was; null: nothing had marked the student.",
                },
                "after": _ref("RegisterRow"),
            },
        },
        "StatusCounts": {
            "type": "object",
            "required": ["sessions", *STATUSES],
            "properties": {
                "sessions": {"type": "integer", "minimum": 0},
                **{status: {"type": "integer", "minimum": 0} for status in STATUSES},
            },
        },
        "HistoryRow": {
            "type": "object",
            "required": ["class_id", "date", "period", "status", "source"],
            "properties": {
                "class_id": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                "period": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES},
                "source": {"type": "string", "enum": [*SOURCES, None], "nullable": True},
                "marked_by": {"type": "string", "nullable": True},
                "marked_at": nullable_datetime,
                "note": {"type": "string", "nullable": True},
            },
        },
        "StudentHistory": {
            "type": "object",
            "required": [
                "student_id",
                "name",
                "date_from",
                "date_to",
                "sessions",
                "attended",
                "rate",
                "counts",
                "rows",
            ],
            "properties": {
                "student_id": {"type": "string"},
                "name": {"type": "string"},
                "date_from": {"type": "string", "format": "date"},
                "date_to": {"type": "string", "format": "date"},
                "sessions": {"type": "integer", "minimum": 0},
                "attended": {"type": "integer", "minimum": 0},
                "rate": {
                    "type": "number",
                    "nullable": True,
                    "description": "attended / sessions (present and late attend); null: no "
                    "session in the range.",
                },
                "counts": _ref("StatusCounts"),
                "rows": {"type": "array", "items": _ref("HistoryRow")},
            },
        },
        "AbsenceRow": {
            "type": "object",
            "required": list(AbsenceRow.model_fields),
            "properties": {
                "student_id": {"type": "string"},
                "name": {"type": "string"},
                "sessions": {"type": "integer", "minimum": 0},
                "attended": {"type": "integer", "minimum": 0},
                "absent": {"type": "integer", "minimum": 0},
                "late": {"type": "integer", "minimum": 0},
                "excused": {"type": "integer", "minimum": 0},
                "rate": {"type": "number", "nullable": True},
                "absent_on": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The sessions missed: 'YYYY-MM-DD', or 'YYYY-MM-DD <period>'.",
                },
            },
        },
        "ClassAbsences": {
            "type": "object",
            "required": ["class_id", "date_from", "date_to", "sessions", "rows"],
            "properties": {
                "class_id": {"type": "string"},
                "date_from": {"type": "string", "format": "date"},
                "date_to": {"type": "string", "format": "date"},
                "sessions": {"type": "integer", "minimum": 0},
                "rows": {
                    "type": "array",
                    "items": _ref("AbsenceRow"),
                    "description": "Every student enrolled in the class, most absences first.",
                },
            },
        },
        "AttendanceList": {
            "type": "object",
            "required": ["records"],
            "properties": {"records": {"type": "array", "items": _ref("AttendanceRecord")}},
        },
        "ModelInfo": {
            "type": "object",
            "required": [
                "version",
                "model_name",
                "detector",
                "metric",
                "threshold",
                "students",
                "embeddings",
                "updated_at",
                "pipeline",
                "other_pipelines",
                "students_to_reembed",
            ],
            "properties": {
                "version": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Gallery version; 0 until someone is enrolled.",
                },
                "model_name": {"type": "string"},
                "detector": {"type": "string"},
                "metric": {"type": "string"},
                "threshold": {"type": "number"},
                "students": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Students with embeddings of the current pipeline.",
                },
                "embeddings": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Embeddings of the current pipeline (the only ones matched).",
                },
                "updated_at": nullable_datetime,
                "pipeline": {
                    "type": "string",
                    "description": "What makes embeddings now: model/detector-"
                    "alignment version, e.g. Facenet/centerface-v1.",
                },
                "other_pipelines": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "Embeddings of other pipelines still stored, per pipeline; "
                    "never matched (POST /api/v1/model/reembed replaces them).",
                },
                "students_to_reembed": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Students with embeddings of other pipelines only: not "
                    "recognised until re-embedded.",
                },
            },
        },
        "Account": {
            "type": "object",
            "required": ["username", "role", "classes", "disabled", "created_at", "updated_at"],
            "properties": {
                "username": {"type": "string"},
                "role": {"type": "string", "enum": list(ACCOUNT_ROLES)},
                "classes": {
                    "type": "array",
                    "items": {"type": "string"},
                    "nullable": True,
                    "description": "The classes the account may see; null: every class.",
                },
                "disabled": {"type": "boolean"},
                "email": {
                    "type": "string",
                    "nullable": True,
                    "description": "The address a login through the identity provider verifies.",
                },
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "AccountList": {
            "type": "object",
            "required": ["accounts"],
            "properties": {"accounts": {"type": "array", "items": _ref("Account")}},
        },
        "Login": {
            "type": "object",
            "required": ["token", "expires_at", "account"],
            "properties": {
                "token": {
                    "type": "string",
                    "description": "The session's bearer token, shown once.",
                },
                "expires_at": {"type": "string", "format": "date-time"},
                "account": _ref("Account"),
            },
        },
        "Whoami": {
            "type": "object",
            "required": ["name", "role", "classes", "kind", "expires_at"],
            "properties": {
                "name": {"type": "string", "description": "The username, or the API token's name."},
                "role": {"type": "string", "enum": list(ACCOUNT_ROLES)},
                "classes": {"type": "array", "items": {"type": "string"}, "nullable": True},
                "kind": {"type": "string", "enum": ["login", "api_token"]},
                "expires_at": {"type": "string", "format": "date-time", "nullable": True},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not_ready"]},
                "checks": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Each check (redis, blob_store, records, workers): "
                    '"ok" or why it failed, naming the bucket, table '
                    "or endpoint that is missing or down.",
                },
                "workers": {
                    "type": "array",
                    "description": "The workers that answered the ping: the queues they "
                    "consume, the device FaceNet runs on and what runs it "
                    "(null until the model has loaded).",
                    "items": {
                        "type": "object",
                        "required": ["name", "queues", "device"],
                        "properties": {
                            "name": {"type": "string"},
                            "queues": {
                                "type": "array",
                                "nullable": True,
                                "items": {"type": "string"},
                            },
                            "device": {
                                "type": "string",
                                "nullable": True,
                                "description": "CPU or GPU",
                            },
                            "engine": {
                                "type": "string",
                                "nullable": True,
                                "description": "onnx or tensorflow",
                            },
                        },
                    },
                },
            },
        },
    }


def _with_roster_body(body: dict, student_id: dict, name: dict, class_id: dict) -> dict:
    """POST /api/v1/students also takes a JSON body: a student put on the roster, no photos."""
    body["content"]["application/json"] = {
        "schema": {
            "type": "object",
            "required": ["student_id", "name", "class_id"],
            "additionalProperties": False,
            "properties": {"student_id": student_id, "name": name, "class_id": class_id},
        }
    }
    return body


def build_spec(settings: Settings) -> dict:
    student_id = _identifier("Student id: 1-64 of letters, digits, '.', '_' or '-'.")
    name = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": NAME_PATTERN,
        "description": "Printable text (Python's str.isprintable), not only spaces; "
        "leading/trailing spaces are dropped.",
    }
    class_id = _identifier("Class id: same characters as a student id.")
    job_id = {"type": "string", "pattern": JOB_ID_PATTERN}
    date = _date("The register's day.")
    period = _period("The register's period; empty or left out: the whole day.")
    paths: dict[str, dict[str, dict]] = {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process is up.",
                "responses": {"200": _json(_ref("Health"), "Up."), **_COMMON_ERRORS},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Redis, the stores and at least one worker answer.",
                "responses": {
                    "200": _json(_ref("Readiness"), "Ready."),
                    "503": _json(_ref("Readiness"), "Not ready; checks say why."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/docs": {
            "get": {
                "operationId": "docs",
                "summary": "This document as a page to read and try (Swagger UI, served from here).",
                "responses": {
                    "200": {
                        "description": "HTML.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/docs/{asset}": {
            "get": {
                "operationId": "docsAsset",
                "summary": "A file of that page.",
                "parameters": [
                    _path("asset", {"type": "string", "enum": list(DOCS_ASSETS)}),
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/css": {"schema": {"type": "string"}},
                            "text/javascript": {"schema": {"type": "string"}},
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "404": _error("No such file."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/students": {
            "post": {
                "operationId": "enrollStudent",
                "summary": "Enroll a new student (multipart with photos; runs as a job), with "
                "their consent given in the same request or recorded before; or (a JSON body) "
                "put a student on the roster with no photos, at once. An id that is taken "
                "answers 409 student_exists (add photos or rename with their own routes); an "
                "enrollment without consent on record 409 consent_required.",
                "requestBody": _with_roster_body(
                    _multipart(
                        {
                            "student_id": student_id,
                            "name": name,
                            "class_id": class_id,
                            "photos": _photos(settings.max_enroll_photos),
                            **_consent_fields(),
                        },
                        ["student_id", "name", "photos"],
                    ),
                    student_id,
                    name,
                    class_id,
                ),
                "responses": {
                    "200": _json(
                        _ref("Student"),
                        "JSON body: the student was on the roster already under that name "
                        "(the class is added).",
                    ),
                    "201": _json(_ref("Student"), "JSON body: the student, on the roster."),
                    "202": _accepted(),
                    **_UPLOAD_ERRORS,
                    "409": _error(
                        "The student_id is taken (student_exists), or no consent is on record "
                        "(consent_required)."
                    ),
                    **_COMMON_ERRORS,
                },
            },
            "get": {
                "operationId": "listStudents",
                "summary": "Enrolled students.",
                "parameters": [_query("class_id", class_id)],
                "responses": {
                    "200": _json(_ref("StudentList"), "Students."),
                    "400": _error("Invalid class_id."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/api/v1/students/{student_id}/photos": {
            "post": {
                "operationId": "addStudentPhotos",
                "summary": "Add photos to an enrolled student (and optionally a class); runs as "
                "a job, like an enrollment.",
                "parameters": [_path("student_id", student_id)],
                "requestBody": _multipart(
                    {
                        "class_id": class_id,
                        "photos": _photos(settings.max_enroll_photos),
                        **_consent_fields(),
                    },
                    ["photos"],
                ),
                "responses": {
                    "202": _accepted(),
                    **_UPLOAD_ERRORS,
                    "404": _error("No such student."),
                    "409": _error("No consent is on record and none was given (consent_required)."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/students/{student_id}/consent": {
            "put": {
                "operationId": "putConsent",
                "summary": "Record the student's consent to hold their face data, replacing "
                "any earlier one (a withdrawn one too); a teacher of one of their classes or "
                "an admin (audited).",
                "parameters": [_path("student_id", student_id)],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": [
                                    "consent_given_by",
                                    "consent_relationship",
                                    "consent_given_on",
                                ],
                                "additionalProperties": False,
                                "properties": {
                                    **_consent_fields(),
                                    "minor": {"type": "boolean", "default": True},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("Student"), "The student, with the consent recorded."),
                    "400": _error(
                        "Invalid student_id, a consent field missing or invalid, a date in "
                        "the future, or a minor's consent not given by a parent or guardian."
                    ),
                    "404": _error("No such student (or not in the caller's classes)."),
                    "415": _error("The body is not a JSON object."),
                    **_COMMON_ERRORS,
                },
            },
            "delete": {
                "operationId": "withdrawConsent",
                "summary": "Withdraw the student's consent, then erase their face data: "
                "embeddings (a new gallery version) and enrollment photos with their uploads. "
                "The student, their classes and attendance stay. Audited; idempotent (again: "
                "200, zeros).",
                "parameters": [_path("student_id", student_id)],
                "responses": {
                    "200": _json(
                        _ref("ConsentWithdrawal"), "The withdrawal, and what was removed."
                    ),
                    "400": _error("Invalid student_id."),
                    "404": _error("No such student."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/api/v1/students/{student_id}": {
            "patch": {
                "operationId": "renameStudent",
                "summary": "Rename a student (audited).",
                "parameters": [_path("student_id", student_id)],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": MAX_NAME_LENGTH,
                                        "pattern": NAME_PATTERN,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("Student"), "The student, renamed."),
                    "400": _error("Invalid student_id or name."),
                    "404": _error("No such student."),
                    "415": _error("The body is not a JSON object."),
                    **_COMMON_ERRORS,
                },
            },
            "get": {
                "operationId": "getStudent",
                "summary": "One student.",
                "parameters": [_path("student_id", student_id)],
                "responses": {
                    "200": _json(_ref("Student"), "The student."),
                    "400": _error("Invalid student_id."),
                    "404": _error("No such student."),
                    **_COMMON_ERRORS,
                },
            },
            "delete": {
                "operationId": "deleteStudent",
                "summary": "Erase a student everywhere: embeddings (a new gallery version), "
                "enrollment photos, records; with attendance=true also their attendance "
                "and the class photos that recognised them. Idempotent: again, it "
                "removes whatever is left (200, maybe all zero); 404 only for an id "
                "never known.",
                "parameters": [
                    _path("student_id", student_id),
                    _query("attendance", {"type": "string", "enum": ["true", "false"]}),
                ],
                "responses": {
                    "200": _json(_ref("Erasure"), "What was removed."),
                    "400": _error("Invalid student_id or attendance."),
                    "404": _error("No such student."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/api/v1/sessions": {
            "post": {
                "operationId": "logIn",
                "summary": "Log in with a username and password, or with the ID token of the "
                "school's identity provider: a session token to send as the bearer token until "
                "it expires or is ended.",
                "requestBody": _json_body(
                    {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["username", "password"],
                                "additionalProperties": False,
                                "properties": {
                                    "username": {"type": "string", "maxLength": 64},
                                    "password": {"type": "string", "maxLength": MAX_PASSWORD},
                                },
                            },
                            {
                                "type": "object",
                                "required": ["provider", "id_token"],
                                "additionalProperties": False,
                                "properties": {
                                    "provider": {"type": "string", "maxLength": 32},
                                    "id_token": {"type": "string", "maxLength": 16384},
                                },
                            },
                        ]
                    }
                ),
                "responses": {
                    "201": _json(_ref("Login"), "Logged in."),
                    "400": _error("A missing or unknown field."),
                    "401": _error(
                        "Wrong username or password, or the account is disabled; or an ID token "
                        "that does not verify or whose email no account has (login_failed)."
                    ),
                    "503": _error(
                        "The identity provider does not answer (identity_provider_unavailable)."
                    ),
                    "415": _error("The body is not a JSON object."),
                    "429": _error(
                        "Too many failed logins for this username lately (too_many_logins)."
                    ),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/sessions/current": {
            "get": {
                "operationId": "whoami",
                "summary": "Who the bearer token is: their name, role and classes.",
                "responses": {"200": _json(_ref("Whoami"), "Who."), **_COMMON_ERRORS},
            },
            "delete": {
                "operationId": "logOut",
                "summary": "End this login's session.",
                "responses": {
                    "204": {"description": "Ended."},
                    "409": _error("An API token, not a login (not_a_login)."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/api/v1/accounts": {
            "get": {
                "operationId": "listAccounts",
                "summary": "Every account (admin).",
                "responses": {"200": _json(_ref("AccountList"), "Accounts."), **_COMMON_ERRORS},
            },
            "post": {
                "operationId": "createAccount",
                "summary": "Create an account (admin; audited).",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["username", "role"],
                        "additionalProperties": False,
                        "description": "A password, an email, or both.",
                        "anyOf": [
                            {
                                "required": ["password"],
                                "properties": {"password": {"type": "string"}},
                            },
                            {"required": ["email"], "properties": {"email": {"type": "string"}}},
                        ],
                        "properties": {
                            "username": {"type": "string", "pattern": USERNAME_PATTERN},
                            "password": {**_password(), "nullable": True},
                            "email": {
                                "type": "string",
                                "nullable": True,
                                "maxLength": 254,
                                "pattern": EMAIL_PATTERN,
                            },
                            "role": {"type": "string", "enum": list(ACCOUNT_ROLES)},
                            "classes": _account_classes(
                                "The classes the account may see; null or absent: every class."
                            ),
                        },
                    }
                ),
                "responses": {
                    "201": _json(_ref("Account"), "Created."),
                    "400": _error("An invalid username, password, role or class."),
                    "409": _error(
                        "The username is taken (account_exists), or the email (email_taken)."
                    ),
                    "415": _error("The body is not a JSON object."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/api/v1/accounts/{username}": {
            "patch": {
                "operationId": "changeAccount",
                "summary": "Change an account's role or classes, disable or enable it, or set a "
                "new password (admin; audited). Disabling it or a new password ends its "
                "sessions.",
                "parameters": [_path("username", {"type": "string", "pattern": USERNAME_PATTERN})],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "role": {
                                "type": "string",
                                # A nullable enum admits null only when it lists it.
                                "enum": [*ACCOUNT_ROLES, None],
                                "nullable": True,
                            },
                            "classes": _account_classes(
                                "The classes the account may see from now on; null or "
                                "absent: as they are."
                            ),
                            "all_classes": {
                                "type": "boolean",
                                "description": "true: every class (classes is ignored).",
                            },
                            "disabled": {"type": "boolean", "nullable": True},
                            "password": {**_password(), "nullable": True},
                            "email": {
                                "type": "string",
                                "nullable": True,
                                "maxLength": 254,
                                "pattern": f"^$|{EMAIL_PATTERN}",
                                "description": "The email; empty: none.",
                            },
                        },
                    }
                ),
                "responses": {
                    "200": _json(_ref("Account"), "Changed."),
                    "400": _error("An invalid field."),
                    "404": _error("No such account (account_not_found)."),
                    "409": _error(
                        "The last admin who can log in cannot go (last_admin), or the email is "
                        "another account's (email_taken)."
                    ),
                    "415": _error("The body is not a JSON object."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/audit": {
            "get": {
                "operationId": "listAudit",
                "summary": "The audit log (enrollments, deletions, exports), newest first.",
                "parameters": [
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": AUDIT_MAX_LIMIT,
                            "default": 100,
                        },
                    )
                ],
                "responses": {
                    "200": _json(_ref("AuditList"), "Entries."),
                    "400": _error("Invalid limit."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/recognitions": {
            "post": {
                "operationId": "recognise",
                "summary": "Take attendance from class photos; runs as a job.",
                "requestBody": _multipart(
                    {
                        "class_id": class_id,
                        "date": _date("Day of the class (default: today, UTC)."),
                        "period": _period(
                            "The register's period (default: the whole day's register)."
                        ),
                        "photos": _photos(settings.max_recognition_photos),
                    },
                    ["class_id", "photos"],
                ),
                "responses": {
                    "202": _accepted(),
                    **_UPLOAD_ERRORS,
                    "404": _error("No student is enrolled in class_id."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "State, progress and result of a job.",
                "parameters": [_path("job_id", job_id)],
                "responses": {
                    "200": _json(_ref("JobView"), "The job."),
                    "404": _error("No such job (or it expired)."),
                    "503": _error("Redis is unavailable."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/jobs/{job_id}/photos/{n}/faces/{k}/assign": {
            "post": {
                "operationId": "assignFace",
                "summary": "Settle a face of a recognised class photo: whose it is (the student "
                "is marked present from it, a person's mark; late stays late), or null: its "
                "match was wrong (a mark whose evidence it is moves to the student's next best "
                "face in the job, or becomes absent). learn: also queue an enrollment adding "
                "this face to the student's photos. Teacher of the job's class; once the "
                "register is signed off, an admin's correction.",
                "parameters": [
                    _path("job_id", job_id),
                    _path("n", {"type": "string", "pattern": r"^\d+$"}),
                    _path("k", {"type": "string", "pattern": r"^\d+$"}),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["student_id"],
                                "additionalProperties": False,
                                "properties": {
                                    "student_id": {**student_id, "nullable": True},
                                    "learn": {"type": "boolean", "default": False},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("SettledFace"), "Settled."),
                    "400": _error(
                        "An unknown field, a bad student_id, learn not a boolean, or learn "
                        "without a student."
                    ),
                    "403": _error("A viewer, or a job of a class the token may not see."),
                    "404": _error(
                        "job_not_found, photo_not_found, face_not_found, unknown_student or "
                        "student_not_in_class."
                    ),
                    "409": _error(
                        "job_not_finished (not a succeeded recognition), "
                        "register_finalized (signed off; only an admin corrects it), or "
                        "consent_required (learn, without the student's consent on record)."
                    ),
                    "410": _error("photo_expired: learn, after the photo was purged."),
                    "415": _error("The body is not a JSON object."),
                    "503": _error("Redis is unavailable."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/jobs/{job_id}/photos/{n}/faces/{k}/image": {
            "get": {
                "operationId": "getFaceImage",
                "summary": "The face, cut from the stored class photo (a margin around it, at "
                "most 256 px on its longer side). Teacher of the job's class.",
                "parameters": [
                    _path("job_id", job_id),
                    _path("n", {"type": "string", "pattern": r"^\d+$"}),
                    _path("k", {"type": "string", "pattern": r"^\d+$"}),
                ],
                "responses": {
                    "200": {
                        "description": "JPEG.",
                        "content": {
                            "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "403": _error("A viewer, or a job of a class the token may not see."),
                    "404": _error("job_not_found, photo_not_found or face_not_found."),
                    "409": _error("job_not_finished: not a succeeded recognition."),
                    "410": _error("photo_expired: the retention policy deleted the photo."),
                    "503": _error("Redis is unavailable."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/attendance": {
            "get": {
                "operationId": "listAttendance",
                "summary": "Attendance records.",
                "parameters": [
                    _query("class_id", class_id),
                    _query("student_id", student_id),
                    _query("date", _date("One day; the same as from=to=date.")),
                    _query("from", _date("First day, inclusive.")),
                    _query("to", _date("Last day, inclusive.")),
                    _query("period", _period("Only this period's marks (empty: the whole day's).")),
                    _query("format", {"type": "string", "enum": ["json", "csv"]}),
                ],
                "responses": {
                    "200": {
                        "description": "Records (CSV with format=csv: an audited export).",
                        "content": {
                            "application/json": {"schema": _ref("AttendanceList")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error("An invalid id, date or period."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/attendance/{class_id}/{date}": {
            "get": {
                "operationId": "getRegister",
                "summary": "The class's register for the date and period: every student "
                "enrolled, with their status and what marked them (absent: nothing did).",
                "parameters": [
                    _path("class_id", class_id),
                    _path("date", date),
                    _query("period", period),
                    _query("format", {"type": "string", "enum": ["json", "csv", "xlsx"]}),
                ],
                "responses": {
                    "200": {
                        "description": "The register (format=csv or xlsx: one row per student, "
                        "an audited export, teacher and up).",
                        "content": {
                            "application/json": {"schema": _ref("Register")},
                            "text/csv": {"schema": {"type": "string"}},
                            XLSX_MIMETYPE: {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "400": _error("An invalid class_id, date, period or format."),
                    "403": _error("An export by a viewer, or a class the token may not see."),
                    "404": _error("No student is enrolled in class_id (unknown_class)."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/attendance/{class_id}/{date}/{student_id}": {
            "put": _mark_operation(class_id, date, period, student_id)
        },
        "/api/v1/attendance/{class_id}/{date}/finalize": {
            "put": _mark_operation(class_id, date, period, None),
            "post": {
                "operationId": "finalizeRegister",
                "summary": "Sign the register off (teacher of the class or admin; audited): "
                "from then on only an admin changes it. Again, it changes nothing.",
                "parameters": [_path("class_id", class_id), _path("date", date)],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"period": period},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("RegisterLock"), "The register's sign-off."),
                    "400": _error("An invalid class_id, date, period or field."),
                    "404": _error("No student is enrolled in class_id (unknown_class)."),
                    "415": _error("The body is not a JSON object."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/api/v1/students/{student_id}/attendance": {
            "get": _report_operation(
                "studentAttendance",
                "A student's status in every session of their classes over the range, and "
                "their attendance rate.",
                _path("student_id", student_id),
                "StudentHistory",
                "No such student (student_not_found).",
            )
        },
        "/api/v1/classes/{class_id}/absences": {
            "get": _report_operation(
                "classAbsences",
                "Each student enrolled in the class with their absences over the range, "
                "most absent first.",
                _path("class_id", class_id),
                "ClassAbsences",
                "No student is enrolled in class_id (unknown_class).",
            )
        },
        "/api/v1/model": {
            "get": {
                "operationId": "modelInfo",
                "summary": "The current gallery version.",
                "responses": {"200": _json(_ref("ModelInfo"), "The gallery."), **_COMMON_ERRORS},
            }
        },
        "/api/v1/model/reembed": {
            "post": {
                "operationId": "reembedModel",
                "summary": "Re-embed, with the current pipeline, the stored enrollment photos of "
                "every student whose embeddings come from another pipeline (admin); runs "
                "as a job (kind enrollment) whose result is {pipeline, students, "
                "embeddings, skipped: [{student_id, reason}], model_version}.",
                "responses": {
                    "202": _accepted(),
                    "503": _error("Redis is unavailable; nothing was queued."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/v1/annotated/{job_id}/{n}": {
            "get": {
                "operationId": "annotatedPhoto",
                "summary": "Photo n of a recognition job with the faces boxed and named.",
                "parameters": [
                    _path("job_id", job_id),
                    _path("n", {"type": "integer", "minimum": 0}),
                ],
                "responses": {
                    "200": {
                        "description": "JPEG.",
                        "content": {
                            "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "404": _error("No such job or photo."),
                    **_COMMON_ERRORS,
                },
            }
        },
    }
    for path, operations in paths.items():
        for operation in operations.values():
            if path in PUBLIC_PATHS:
                operation["security"] = []
            else:
                operation["responses"].setdefault("401", _error("No valid bearer token."))
                operation["responses"].setdefault(
                    "403", _error("The token's role (or classes) may not do this.")
                )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Classroom attendance API",
            "version": "1.0.0",
            "description": (
                "Enroll students from photos and take attendance from class photos. Both run "
                "as jobs: POST answers 202 with a status_url to poll. Every error is "
                '{"error": {"code": ..., "message": ...}}.'
            ),
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token; roles: admin, teacher, viewer.",
                }
            },
        },
    }


@bp.get("/api/v1/openapi.json")
@public
def openapi_json():
    return jsonify(build_spec(services().settings))
