"""Checking consent as it is given: by whom, their relationship to the student, when, and
whether the student is a minor (whose consent only a parent or guardian can give)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import cast, get_args

from attendance.domain.errors import ConsentRequired, ValidationFailed
from attendance.domain.schemas import MAX_NAME_LENGTH, Consent, ConsentRelationship

# The names of the fields, in an enrollment's form and in PUT .../consent's JSON body alike.
GIVEN_BY = "consent_given_by"
RELATIONSHIP = "consent_relationship"
GIVEN_ON = "consent_given_on"
MINOR = "minor"
FIELDS = (GIVEN_BY, RELATIONSHIP, GIVEN_ON, MINOR)
RELATIONSHIPS: tuple[str, ...] = get_args(ConsentRelationship)

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

HOW_TO_GIVE = (
    f"send {GIVEN_BY} (who gave it), {RELATIONSHIP} ({', '.join(RELATIONSHIPS)}), {GIVEN_ON} "
    f"(YYYY-MM-DD) and {MINOR} (true or false, default true) with the enrollment, or record it "
    "first with PUT /api/v1/students/<student_id>/consent"
)


def latest_today() -> dt.date:
    """Today where it is latest on Earth: a consent dated today where it was signed is never
    refused as being in the future."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date()


@dataclass(frozen=True)
class GivenConsent:
    """Consent as a caller gave it, checked; recorded() adds who recorded it and when."""

    given_by: str
    relationship: ConsentRelationship
    given_on: dt.date
    minor: bool

    def recorded(self, student_id: str, by: str, at: dt.datetime) -> Consent:
        return Consent(
            student_id=student_id,
            given_by=self.given_by,
            relationship=self.relationship,
            given_on=self.given_on,
            minor=self.minor,
            recorded_by=by,
            recorded_at=at,
        )


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text", code="invalid_consent")
    return value.strip()


def _minor(value: object) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValidationFailed(f"{MINOR} must be true or false", code="invalid_consent")


def parse_consent(values: dict, today: dt.date) -> GivenConsent | None:
    """The consent given in ``values`` (a form or a JSON object), None if none of its fields
    is there (``minor`` alone gives no consent). A field missing beside the others, a bad
    value, a date in the future, or a minor's consent given by anyone but a parent or
    guardian: ValidationFailed saying so."""
    given_by = _text(values.get(GIVEN_BY), GIVEN_BY)
    relationship = _text(values.get(RELATIONSHIP), RELATIONSHIP)
    given_on = _text(values.get(GIVEN_ON), GIVEN_ON)
    if not (given_by or relationship or given_on):
        return None
    missing = [
        f
        for f, v in ((GIVEN_BY, given_by), (RELATIONSHIP, relationship), (GIVEN_ON, given_on))
        if not v
    ]
    if missing:
        raise ValidationFailed(
            f"consent needs {', '.join(missing)} as well; {HOW_TO_GIVE}", code="invalid_consent"
        )
    assert given_by and relationship and given_on
    if len(given_by) > MAX_NAME_LENGTH or not given_by.isprintable():
        raise ValidationFailed(
            f"{GIVEN_BY} must be printable text of at most {MAX_NAME_LENGTH} characters",
            code="invalid_consent",
        )
    if relationship not in RELATIONSHIPS:
        raise ValidationFailed(
            f"{RELATIONSHIP} must be one of {', '.join(RELATIONSHIPS)}", code="invalid_consent"
        )
    day = None
    if _ISO_DATE.fullmatch(given_on):
        try:
            day = dt.date.fromisoformat(given_on)
        except ValueError:
            pass
    if day is None:
        raise ValidationFailed(
            f"{GIVEN_ON} must be a calendar date as YYYY-MM-DD, got {given_on[:40]!r}",
            code="invalid_consent",
        )
    if day > today:
        raise ValidationFailed(
            f"{GIVEN_ON} must not be in the future (today is {today.isoformat()})",
            code="invalid_consent",
        )
    minor = _minor(values.get(MINOR))
    if minor and relationship == "self":
        raise ValidationFailed(
            "a minor's consent must be given by a parent or guardian: set "
            f"{RELATIONSHIP} to parent or guardian (or {MINOR} to false for an adult student)",
            code="minor_needs_parent",
        )
    return GivenConsent(given_by, cast(ConsentRelationship, relationship), day, minor)


def require_active_consent(consent: Consent | None, student_id: str) -> None:
    """ConsentRequired unless ``consent`` (the student's on record) is given and not withdrawn:
    what enrolling any face of theirs needs."""
    if consent is None:
        raise ConsentRequired(
            f"no consent to hold the face data of {student_id!r} is on record; {HOW_TO_GIVE}"
        )
    if not consent.active:
        assert consent.withdrawn_at is not None
        raise ConsentRequired(
            f"the consent to hold the face data of {student_id!r} was withdrawn on "
            f"{consent.withdrawn_at.date().isoformat()}; to enroll them again consent must be "
            f"given again: {HOW_TO_GIVE}"
        )
