"""Parsing and validation of form fields and query parameters; each failure is a 4xx AppError.

Views call these before touching any store, so a rejected request never leaves anything behind.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import Request
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from attendance.domain.errors import AppError, ValidationFailed
from attendance.domain.schemas import validate_identifier

# Only the calendar form: fromisoformat would also take "20240101" or week dates.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_JOB_ID = re.compile(r"[0-9a-f]{32}")


# A form with no file in it is still a form (clients send it url-encoded): that is a
# missing_photos, not a wrong media type.
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def require_form(request: Request) -> None:
    # Without this a JSON body would be reported as "student_id is required", which misleads.
    if request.mimetype not in _FORM_TYPES:
        raise AppError(
            f"{request.method} {request.path} takes multipart/form-data, not "
            f"{request.mimetype or 'a body without a Content-Type'}",
            code="unsupported_media_type",
            status=415,
        )


def json_object(request: Request, route: str, example: str, *, optional: bool = False) -> dict:
    """The body as a JSON object, else 415 saying what ``route`` takes; where the whole body is
    ``optional``, none is {}."""
    if optional and not request.get_data():
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise AppError(
            f"{route} takes a JSON object such as {example}",
            code="unsupported_media_type",
            status=415,
        )
    return body


def refuse_unknown_fields(body: dict, allowed: set[str], explain: str) -> None:
    """400 naming the fields of ``body`` outside ``allowed``, then ``explain``."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValidationFailed(
            f"unknown field(s) {', '.join(map(repr, unknown))}; {explain}",
            code="invalid_request",
        )


def optional_identifier(values: MultiDict, field: str) -> str | None:
    """An identifier that may be left out; present but empty is an error, not "absent"."""
    if field not in values:
        return None
    value = values.get(field, "")
    if value == "":
        raise ValidationFailed(f"{field} must not be empty", code=f"invalid_{field}")
    return validate_identifier(value, field)


def parse_date(value: str, field: str) -> dt.date:
    if _ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationFailed(
        f"{field} must be a calendar date as YYYY-MM-DD, got {value[:40]!r}", code="invalid_date"
    )


def optional_date(values: MultiDict, field: str) -> dt.date | None:
    return parse_date(values[field], field) if field in values else None


def date_range(args: MultiDict) -> tuple[dt.date | None, dt.date | None]:
    """``date`` means from=to=date. Every filter narrows the result, so combining ``date`` with
    ``from``/``to``, or a ``from`` after ``to``, is answered with what matches (maybe nothing)
    rather than refused: the OpenAPI document cannot say that parameters exclude each other."""
    date_from, date_to = optional_date(args, "from"), optional_date(args, "to")
    day = optional_date(args, "date")
    if day is not None:
        date_from = max(day, date_from) if date_from else day
        date_to = min(day, date_to) if date_to else day
    return date_from, date_to


def is_job_id(value: str) -> bool:
    """Job ids are new_job_id()'s uuid4 hex; anything else cannot name a job or a blob."""
    return bool(_JOB_ID.fullmatch(value))


def invalid_request(exc: ValidationError) -> ValidationFailed:
    """400 saying what was wrong with each field of a body a pydantic model refused."""
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown field {field!r}")
        else:
            problems.append(f"{field}: {error['msg']}")
    return ValidationFailed("; ".join(problems), code="invalid_request")
