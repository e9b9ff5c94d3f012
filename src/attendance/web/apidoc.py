"""A view's OpenAPI operation, declared beside the view: ``@operation(...)`` attaches what it
takes (path parameters, a query, a JSON body, a multipart form, each a pydantic model) and what
it answers, by status. attendance.web.openapi assembles the document from these declarations
by walking the app's URL map; a route without one has no place in it, and a test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from attendance.config.settings import Settings
from attendance.domain.api_shapes import JobAccepted
from attendance.domain.exports import XLSX_MIMETYPE

F = TypeVar("F", bound=Callable)
# A JSON body of one model, or of any of several (each a way to make the same request).
Body = type[BaseModel] | tuple[type[BaseModel], ...]
# The attribute a view function carries its Operation in.
OPERATION_ATTRIBUTE = "openapi_operation"

IMAGE_TYPES = (
    "image/jpeg, image/png, image/webp, image/bmp, image/tiff, image/gif, image/heic, image/heif"
)
# Bodies that are not JSON, by media type.
TEXT: dict = {"type": "string"}
CSV = {"text/csv": TEXT}
JPEG = {"image/jpeg": {"type": "string", "contentMediaType": "image/jpeg"}}
SPREADSHEETS = {**CSV, XLSX_MIMETYPE: {"type": "string", "contentMediaType": XLSX_MIMETYPE}}


@dataclass(frozen=True)
class Reply:
    """One answer of an operation: a JSON body of ``model`` and/or bodies of other media types
    (media type -> JSON Schema); neither: no body (204)."""

    description: str
    model: type[BaseModel] | None = None
    media: Mapping[str, dict] = field(default_factory=dict)
    links: Mapping[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Form:
    """A multipart body: its fields from ``model``; how many photos it takes from the settings."""

    model: type[BaseModel]
    max_photos: Callable[[Settings], int]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    replies: Mapping[int, Reply]
    # Error statuses (the one error shape), each with what it means.
    errors: Mapping[int, str] = field(default_factory=dict)
    query: type[BaseModel] | None = None
    body: Body | None = None
    body_required: bool = True
    form: Form | None = None
    # A path parameter's type where its name alone does not say it (openapi.PATH_PARAMETERS).
    path: Mapping[str, Any] = field(default_factory=dict)


def operation(
    operation_id: str,
    summary: str,
    *,
    replies: Mapping[int, Reply],
    errors: Mapping[int, str] | None = None,
    query: type[BaseModel] | None = None,
    body: Body | None = None,
    body_required: bool = True,
    form: Form | None = None,
    path: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    declared = Operation(
        operation_id,
        summary,
        replies,
        errors or {},
        query,
        body,
        body_required,
        form,
        path or {},
    )

    def attach(view: F) -> F:
        setattr(view, OPERATION_ATTRIBUTE, declared)
        return view

    return attach


def declared_operation(view: Callable) -> Operation | None:
    return getattr(view, OPERATION_ATTRIBUTE, None)


def body_models(declared: Operation) -> tuple[type[BaseModel], ...]:
    body = declared.body
    if body is None:
        return ()
    return body if isinstance(body, tuple) else (body,)


# --- what several operations share -------------------------------------------------------------

# Only the job exists when 202 is sent; the student appears when a worker has run it, so a link
# to GET /students/{student_id} would promise what is not there yet.
ACCEPTED = Reply(
    "Queued; poll status_url.",
    JobAccepted,
    links={"GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/job_id"}}},
)
UPLOAD_ERRORS = {
    400: "A missing or invalid field, a file that is not a whole single-frame image, or a "
    "photos part that arrived as text (photos_part_not_a_file).",
    413: "Too large, by code: payload_too_large (the body is over the upload limit), "
    "request_too_large (the photos declare more pixels in all than a request may; checked "
    "before any is decoded), form_field_too_large (a text field over the form's limit), "
    "too_many_form_parts. Nothing was stored.",
    415: "The body is not multipart/form-data.",
    503: "Redis (service_unavailable) or the blob store (store_unavailable) is unavailable; "
    "nothing was stored.",
}
NOT_JSON = {415: "The body is not a JSON object."}
