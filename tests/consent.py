"""Consent form fields every test that enrolls a face through the API sends."""

from __future__ import annotations

import datetime as dt

from attendance.domain.schemas import Consent

CONSENT_FORM = {
    "consent_given_by": "A. Parent",
    "consent_relationship": "parent",
    "consent_given_on": "2026-09-01",
    "minor": "true",
}


def give_consent(records, student_id: str, *, by: str = "tester") -> Consent:
    """Record the CONSENT_FORM's consent for the student straight in a records store, as the
    API does when an enrollment brings it."""
    consent = Consent(
        student_id=student_id,
        given_by=CONSENT_FORM["consent_given_by"],
        relationship="parent",
        given_on=dt.date.fromisoformat(CONSENT_FORM["consent_given_on"]),
        minor=True,
        recorded_by=by,
        recorded_at=dt.datetime.now(dt.UTC),
    )
    records.put_consent(consent)
    return consent
