"""Shapes shared by the API, the tasks and the frontend, so each field is named once."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from attendance.domain.errors import ValidationFailed

# A plain name segment: it starts with a letter or a digit (so never '.', '..' or a hidden
# file's name) and is used with fullmatch ('$' would let a trailing newline through).
STUDENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# A register's period: a short label of the teacher's ("1", "morning", "P3 maths"); "" is the
# whole day, the register of a photo sent without one.
PERIOD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}")
# The same rule for JSON Schema, which searches unanchored; empty is the whole day.
PERIOD_PATTERN = f"^({PERIOD_RE.pattern})?$"
MAX_PERIOD_LENGTH = 32
WHOLE_DAY = ""
# What a register says of a student. Absent is what nothing marked them as, and a status a
# teacher may also set by hand; the rest count as attended but late and excused.
AttendanceStatus = Literal["present", "late", "excused", "absent"]
ATTENDED: frozenset[str] = frozenset({"present", "late"})
# Who put a mark there: a face in a class photo, or a person.
MarkSource = Literal["face", "manual"]
# A face mark's distance against the match threshold: well within it, or near its edge.
MatchQuality = Literal["strong", "borderline"]

JobKind = Literal["enrollment", "recognition"]
JobState = Literal["queued", "running", "succeeded", "failed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Box(Strict):
    x: int
    y: int
    w: int
    h: int


class Upload(Strict):
    """A stored upload: the blob key a task reads, and the name the user gave it."""

    key: str
    filename: str
    # When the camera took it (EXIF DateTimeOriginal, with OffsetTimeOriginal when the camera
    # wrote one; without, the camera's own clock with no offset); None when the file says not.
    captured_at: dt.datetime | None = None
    # The part of the photo that is to be used (in its pixels, the right way up): one face of a
    # class photo that a teacher asked to learn. None: the whole photo.
    box: Box | None = None


# --- task messages: references to stored uploads, never image bytes -----------------------------


EnrollmentMode = Literal["create", "add"]


class EnrollmentRequest(Strict):
    job_id: str
    student_id: str
    # create: a new student (the id must be free, or theirs under the same name); add: more
    # photos for an existing student, whose stored name stays (name is then None).
    mode: EnrollmentMode = "create"
    name: str | None = None
    class_id: str | None = None
    photos: list[Upload]
    # The name of the API token that asked, for the audit log.
    requested_by: str | None = None
    # When the API accepted it: an erasure after this time wins over the enrollment.
    requested_at: dt.datetime | None = None


class RecognitionRequest(Strict):
    job_id: str
    class_id: str
    date: dt.date
    period: str = WHOLE_DAY
    photos: list[Upload]
    # When the API accepted it: a student erased after this time is not marked by it.
    requested_at: dt.datetime | None = None


class ReembedRequest(Strict):
    job_id: str
    # Who asked and when, for the audit log.
    requested_by: str | None = None
    requested_at: dt.datetime | None = None


# --- results ------------------------------------------------------------------------------------


class Rejected(Strict):
    filename: str
    reason: str


class EnrollmentResult(Strict):
    student_id: str
    accepted_photos: int
    rejected: list[Rejected]
    model_version: int


# assigned and rejected are a teacher's settlement of a face after the job: the annotated
# photo, drawn by the job, still shows the match as it was.
FaceOutcome = Literal["recognised", "unknown", "unidentifiable", "assigned", "rejected"]


class FaceMatch(Strict):
    box: Box
    student_id: str | None
    # Stored job results hold ids only; the API fills in the current name when it is read.
    name: str | None
    distance: float | None
    # recognised: matched to a student; unknown: a clear face that matches nobody;
    # unidentifiable: a face found but not clear enough to decide (``reason`` says why);
    # assigned, rejected: a teacher's decision, replacing the match (``settled_by`` says whose).
    outcome: FaceOutcome = "unknown"
    reason: str | None = None
    settled_by: str | None = None


class PhotoResult(Strict):
    filename: str
    faces: list[FaceMatch]
    annotated_key: str | None = None
    # Why there is no annotated copy of a photo that was read (the attendance stands).
    annotation_error: str | None = None
    error: str | None = None
    captured_at: dt.datetime | None = None


class Evidence(Strict):
    """Where a present student was seen best in a job: photo and face indices, distance."""

    student_id: str
    photo: int
    face: int
    distance: float


class RecognitionResult(Strict):
    class_id: str
    date: dt.date
    # The register the job marks is (class_id, date, period).
    period: str = WHOLE_DAY
    photos: list[PhotoResult]
    present: list[str]
    unknown_faces: int
    unidentifiable_faces: int = 0
    # One entry per present student: their best face among all the job's photos.
    evidence: list[Evidence] = Field(default_factory=list)
    model_version: int
    # Where the worker's time went, in ms: decode, detect, embed, match, annotate, store, total.
    timings: dict[str, float] | None = None


class Progress(Strict):
    done: int = 0
    total: int = 0


class ErrorBody(Strict):
    code: str
    message: str


class JobView(Strict):
    job_id: str
    kind: JobKind
    # The class the job is for (an enrollment without a class: None): who may read it.
    class_id: str | None = Field(default=None, description="The class the job is for.")
    state: JobState
    progress: Progress
    result: dict | None = Field(
        default=None,
        description="Once succeeded: an enrollment's, a recognition's or a re-embedding's result.",
    )
    error: ErrorBody | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


# --- records ------------------------------------------------------------------------------------


ConsentRelationship = Literal["self", "parent", "guardian"]


class Consent(Strict):
    """Consent to hold a student's face data: who gave it and when, who recorded it, and its
    withdrawal. A minor's comes from a parent or guardian."""

    student_id: str
    given_by: str
    relationship: ConsentRelationship
    given_on: dt.date
    minor: bool = True
    recorded_by: str = Field(description="The API token or login that recorded it.")
    recorded_at: dt.datetime
    withdrawn_at: dt.datetime | None = None
    withdrawn_by: str | None = None

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


class Student(Strict):
    student_id: str
    name: str
    class_ids: list[str] = Field(default_factory=list)
    embeddings: int = Field(
        default=0, description="Face embeddings in the current gallery, of the current pipeline."
    )
    # Filled in by the API: the consent on record (None: never given) and whether any face
    # data (embeddings of any pipeline) is held.
    consent: Consent | None = Field(
        default=None, description="The consent on record; null: never given."
    )
    face_data: bool = Field(
        default=False, description="Whether any face data (embeddings of any pipeline) is held."
    )


class AttendanceRecord(Strict):
    """One student's mark in one register (class, date, period)."""

    class_id: str
    date: dt.date
    student_id: str
    name: str
    # When the mark was first made (for a face, when the photo was processed).
    first_seen_at: dt.datetime
    # A face mark's evidence: its cosine distance and the job whose photo showed the face.
    distance: float | None = None
    job_id: str | None = None
    # Which face of that job: the photo's index in the job, the face's index among the photo's
    # faces, its box in the original photo's pixels, and when the camera took the photo.
    photo: int | None = None
    face: int | None = None
    box: Box | None = None
    captured_at: dt.datetime | None = None
    period: str = WHOLE_DAY
    status: AttendanceStatus = "present"
    source: MarkSource = "face"
    # A manual mark's author (the API token's name), when it was set, and the teacher's note.
    marked_by: str | None = None
    marked_at: dt.datetime | None = None
    note: str | None = None


class RegisterLock(Strict):
    """A signed-off register: later changes are an admin's corrections."""

    class_id: str
    date: dt.date
    period: str = WHOLE_DAY
    finalized_by: str
    finalized_at: dt.datetime


class RegisterRow(Strict):
    """A student of the class in a register: their status, and what put it there (none when
    nothing marked them: absent)."""

    student_id: str
    name: str
    status: AttendanceStatus
    source: MarkSource | None = Field(
        default=None, description="What marked the student; null: nothing did (absent)."
    )
    marked_by: str | None = None
    marked_at: dt.datetime | None = None
    note: str | None = None
    job_id: str | None = None
    distance: float | None = None
    photo: int | None = None
    face: int | None = None
    box: Box | None = None
    captured_at: dt.datetime | None = None
    # How near the evidence's face was (attendance.domain.matching.match_quality).
    match_quality: MatchQuality | None = Field(
        default=None,
        description="The evidence's distance against the match threshold: strong or "
        "borderline; null without a distance.",
    )


class Register(Strict):
    class_id: str
    date: dt.date
    period: str = WHOLE_DAY
    finalized: RegisterLock | None = Field(
        default=None, description="Who signed the register off and when; null: not yet."
    )
    rows: list[RegisterRow] = Field(description="Every student enrolled in the class, by name.")


class MarkRequest(Strict):
    """PUT /api/v1/attendance/<class_id>/<date>/<student_id>: a teacher's mark."""

    status: AttendanceStatus
    # Documented only: validate_period checks it, with its own error code.
    period: str = Field(
        default=WHOLE_DAY,
        json_schema_extra={"pattern": PERIOD_PATTERN, "maxLength": MAX_PERIOD_LENGTH},
    )
    note: str | None = Field(default=None, max_length=500)


class AuditEntry(Strict):
    """Who did what to whom: enrollments, deletions and exports, for admins to read."""

    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict = Field(default_factory=dict)


class ModelInfo(Strict):
    version: int = Field(description="Gallery version; 0 until someone is enrolled.")
    model_name: str
    detector: str
    metric: str
    threshold: float
    # students and embeddings count those of the current pipeline (the only ones matched).
    students: int
    embeddings: int
    updated_at: dt.datetime | None = None
    # What makes embeddings now (attendance.domain.pipelines.pipeline_id), e.g. "Facenet/centerface-v1".
    pipeline: str = Field(
        description="What makes embeddings now: model/detector-alignment version."
    )
    other_pipelines: dict[str, int] = Field(
        default_factory=dict,
        description="Embeddings of other pipelines still stored, per pipeline; never matched "
        "(POST /api/v1/model/reembed replaces them).",
    )
    students_to_reembed: int = Field(
        default=0,
        description="Students with embeddings of other pipelines only: not recognised until "
        "re-embedded.",
    )


MAX_NAME_LENGTH = 200


def validate_identifier(value: str | None, field: str) -> str:
    """student_id and class_id: 1-64 of [A-Za-z0-9._-] starting with a letter or a digit, so
    each is one plain segment in blob keys and file paths."""
    if not value:
        raise ValidationFailed(f"{field} is required", code=f"missing_{field}")
    if not isinstance(value, str) or not STUDENT_ID_RE.fullmatch(value):
        raise ValidationFailed(
            f"{field} must be 1-64 characters of letters, digits, '.', '_' or '-', starting "
            "with a letter or a digit",
            code=f"invalid_{field}",
        )
    return value


def validate_period(value: str | None) -> str:
    """A register's period label; missing or empty is the whole day."""
    if value is None or value == "":
        return WHOLE_DAY
    if not isinstance(value, str) or not PERIOD_RE.fullmatch(value):
        raise ValidationFailed(
            "period must be 1-32 characters of letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or a digit (leave it out for the whole day)",
            code="invalid_period",
        )
    return value


def validate_name(value: str | None) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationFailed("name is required", code="missing_name")
    if len(value) > MAX_NAME_LENGTH or not value.isprintable():
        raise ValidationFailed(
            f"name must be printable text of at most {MAX_NAME_LENGTH} characters",
            code="invalid_name",
        )
    return value
