"""The API's request and response shapes that are not stored records: what a view answers
(health, accepted jobs, erasures, lists, logins) and what a body, form or query may carry.

The OpenAPI document (attendance.web.openapi) takes its schemas from these models and from
attendance.domain.schemas, so the rules written here as Field constraints (identifier and name
patterns, lengths, enums) are the ones the document states. Where a view validates a request
itself, its checks stay the authority; the unit tests hold the two in agreement.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from attendance.domain.accounts import (
    CONTROL_CHARACTERS,
    MAX_PASSWORD,
    MIN_PASSWORD,
    USERNAME_RE,
    AccountChange,
    AccountView,
    NewAccount,
)
from attendance.domain.schemas import (
    MAX_NAME_LENGTH,
    MAX_PERIOD_LENGTH,
    PERIOD_PATTERN,
    STUDENT_ID_RE,
    AttendanceRecord,
    AuditEntry,
    Consent,
    ConsentRelationship,
    ErrorBody,
    FaceMatch,
    RegisterRow,
    Strict,
    Student,
)

# --- the rules of single values, as JSON Schema states them -------------------------------------

# JSON Schema patterns search unanchored: the identifier rule is anchored here.
IDENTIFIER_PATTERN = f"^{STUDENT_ID_RE.pattern}$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
# str.isprintable() cannot be written as an ECMA-262 pattern; this excludes the control, format,
# separator and private-use characters of the BMP (lone surrogates cannot be sent as UTF-8) and
# demands one visible character. validate_name stays the authority.
_UNPRINTABLE = (
    r"\x00-\x1f\x7f-\xa0\xad\u1680\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000"
    r"\ue000-\uf8ff\ufeff\ufff0-\ufffb"
)
NAME_PATTERN = rf"^[^{_UNPRINTABLE}]*[^\s{_UNPRINTABLE}][^{_UNPRINTABLE}]*$"
MAX_AUDIT_LIMIT = 1000
MAX_ACCOUNT_CLASSES = 200

Identifier = Annotated[
    str,
    Field(
        pattern=IDENTIFIER_PATTERN,
        min_length=1,
        max_length=64,
        description="1-64 letters, digits, '.', '_' or '-', starting with a letter or a digit.",
    ),
]
PersonName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Printable text (Python's str.isprintable), not only spaces; "
        "leading/trailing spaces are dropped.",
    ),
]
IsoDate = Annotated[
    str,
    Field(pattern=DATE_PATTERN, json_schema_extra={"format": "date"}, description="YYYY-MM-DD."),
]
Period = Annotated[
    str,
    Field(
        pattern=PERIOD_PATTERN,
        max_length=MAX_PERIOD_LENGTH,
        description="The register's period; empty or left out: the whole day.",
    ),
]
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN)]
Digits = Annotated[str, Field(pattern=r"^\d+$")]
Username = Annotated[str, Field(pattern=USERNAME_RE.pattern)]
Password = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        pattern=f"^[^{CONTROL_CHARACTERS}]*$",
        description=f"{MIN_PASSWORD} to {MAX_PASSWORD} characters, spaces allowed.",
    ),
]
AccountClasses = Annotated[
    list[Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)]] | None,
    Field(max_length=MAX_ACCOUNT_CLASSES),
]
AccountRole = Literal["admin", "teacher", "viewer"]
# A file part of a multipart form; the encoding names the image types taken.
Photo = Annotated[bytes, Field(json_schema_extra={"contentMediaType": "application/octet-stream"})]
# A form or query sends text: a flag is the word.
Flag = Literal["true", "false"]
ExportFormat = Literal["json", "csv", "xlsx"]


# --- answers ------------------------------------------------------------------------------------


class Error(Strict):
    """Every 4xx and 5xx answer."""

    error: ErrorBody


class Health(Strict):
    status: Literal["ok"]


class WorkerInfo(Strict):
    """A worker that answered the ping: the queues it consumes, the device FaceNet runs on and
    what runs it (null until the model has loaded)."""

    name: str
    queues: list[str] | None = None
    device: str | None = Field(default=None, description="CPU or GPU")
    engine: str | None = Field(default=None, description="What runs FaceNet, e.g. onnx.")


class Readiness(Strict):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(
        description='Each check (redis, blob_store, records, workers): "ok" or why it failed, '
        "naming the bucket, table or endpoint that is missing or down."
    )
    workers: list[WorkerInfo] = Field(default_factory=list)


class JobAccepted(Strict):
    """A queued job: poll status_url."""

    job_id: JobId
    status_url: str


class StudentList(Strict):
    students: list[Student]


class Erasure(Strict):
    """What erasing a student removed."""

    student_id: str
    embeddings_removed: int
    photos_removed: int
    attendance_removed: int
    model_version: int


class ConsentWithdrawal(Strict):
    """A withdrawn consent, and the face data it removed."""

    student_id: str
    consent: Consent | None
    embeddings_removed: int
    photos_removed: int
    model_version: int


class AttendanceList(Strict):
    records: list[AttendanceRecord]


class MarkResult(Strict):
    before: RegisterRow | None = Field(
        description="The row as it was; null: nothing had marked the student."
    )
    after: RegisterRow


class SettledFace(Strict):
    row: RegisterRow | None = Field(
        description="The register's row of the student concerned after the change; null: the "
        "face matched nobody and was rejected."
    )
    face: FaceMatch
    learn_job_id: JobId | None = None
    learn_status_url: str | None = None


class AuditList(Strict):
    entries: list[AuditEntry]


class AccountList(Strict):
    accounts: list[AccountView]


class LoginSession(Strict):
    """A login's session."""

    token: str = Field(description="The session's bearer token, shown once.")
    expires_at: dt.datetime
    account: AccountView


class Whoami(Strict):
    """Who a bearer token is."""

    name: str = Field(description="The username, or the API token's name.")
    role: AccountRole
    classes: list[str] | None
    kind: Literal["login", "api_token"]
    expires_at: dt.datetime | None


# --- JSON bodies --------------------------------------------------------------------------------


class RosterEntry(Strict):
    """A student put on the roster without photos (and so without face data)."""

    student_id: Identifier
    name: PersonName
    class_id: Identifier


class StudentRename(Strict):
    name: PersonName


class ConsentGiven(Strict):
    """Consent to hold a student's face data, as given."""

    consent_given_by: PersonName
    consent_relationship: ConsentRelationship
    consent_given_on: IsoDate
    minor: bool = True


class FinalizeRequest(Strict):
    period: Period = ""


class FaceAssignment(Strict):
    """Whose face it is; null: its match was wrong."""

    student_id: Identifier | None
    learn: bool = False


class NewAccountRequest(NewAccount):
    """A new account: a password, an email to log in with through the school's identity
    provider, or both. The rules its validators apply are stated here as constraints."""

    username: Username
    password: Password | None = None
    classes: AccountClasses = None


class AccountChangeRequest(AccountChange):
    """What an admin may change; absent fields stay as they are."""

    classes: AccountClasses = None
    password: Password | None = None


# --- multipart forms (the photos' count comes from the settings) --------------------------------


class EnrollmentForm(Strict):
    student_id: Identifier
    name: PersonName
    class_id: Identifier | None = None
    photos: list[Photo] = Field(min_length=1)
    consent_given_by: PersonName | None = None
    consent_relationship: ConsentRelationship | None = Field(
        default=None,
        description="Their relationship to the student; a minor's consent comes from a parent "
        "or guardian.",
    )
    consent_given_on: IsoDate | None = Field(default=None, description="Not in the future.")
    minor: Flag = "true"


class PhotosForm(Strict):
    class_id: Identifier | None = None
    photos: list[Photo] = Field(min_length=1)
    consent_given_by: PersonName | None = None
    consent_relationship: ConsentRelationship | None = None
    consent_given_on: IsoDate | None = None
    minor: Flag = "true"


class RecognitionForm(Strict):
    class_id: Identifier
    date: IsoDate | None = Field(default=None, description="Day of the class (default: today).")
    period: Period | None = None
    photos: list[Photo] = Field(min_length=1)


# --- query strings ------------------------------------------------------------------------------


class StudentListQuery(Strict):
    class_id: Identifier | None = None


class ErasureQuery(Strict):
    attendance: Flag | None = Field(
        default=None, description="true: also their attendance and the photos that showed them."
    )


class AuditQuery(Strict):
    limit: int = Field(default=100, ge=1, le=MAX_AUDIT_LIMIT)


class AttendanceQuery(Strict):
    class_id: Identifier | None = None
    student_id: Identifier | None = None
    date: IsoDate | None = Field(default=None, description="One day; the same as from=to=date.")
    date_from: IsoDate | None = Field(default=None, alias="from", description="First day.")
    date_to: IsoDate | None = Field(default=None, alias="to", description="Last day.")
    period: Period | None = None
    format: Literal["json", "csv"] | None = None


class RegisterQuery(Strict):
    period: Period | None = None
    format: ExportFormat | None = None


class ReportQuery(Strict):
    date_from: IsoDate | None = Field(
        default=None, alias="from", description="First day, inclusive (default: 29 days before)."
    )
    date_to: IsoDate | None = Field(
        default=None, alias="to", description="Last day, inclusive (default: today)."
    )
    format: ExportFormat | None = None
