"""What every records store is: students, attendance and the gallery's current-version pointer.

The pointer moves only by compare-and-set, so concurrent enrollments never lose each other's work.

Erasure leaves a tombstone (the student id and when it was erased). Every write that could bring
a student back (an attendance mark, a gallery commit, the student record) takes the time its work
was asked for, ``not_erased_since``, and is refused with StudentErased, in the same transaction or
conditional write, when the student was erased at or after that time. Work asked for after the
erasure (a new enrollment) goes ahead.

A student's consent to hold their face data is a record of its own (put_consent, withdraw_consent):
withdrawing it keeps the record, with when and by whom it was withdrawn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from attendance.domain.accounts import Account
from attendance.domain.schemas import (
    AttendanceRecord,
    AuditEntry,
    Consent,
    RegisterLock,
    Student,
)


@dataclass(frozen=True)
class Expected:
    """The mark (None: no mark) a write decided from; set_mark writes only over that."""

    mark: AttendanceRecord | None


@dataclass(frozen=True)
class GalleryPointer:
    version: int
    manifest_key: str


_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def stamp(at: dt.datetime) -> str:
    """A UTC time as fixed-width text, so stored times compare as strings do."""
    return at.astimezone(dt.UTC).strftime(_STAMP)


def utc_now_iso() -> str:
    """Now, in UTC, as ISO text: when a row was created or last moved."""
    return dt.datetime.now(dt.UTC).isoformat()


def changed_message(record: AttendanceRecord) -> str:
    return (
        f"the mark of {record.student_id} in the register of {record.class_id} on "
        f"{record.date.isoformat()} was changed meanwhile; read it again"
    )


def erased_message(student_id: str) -> str:
    return f"student {student_id!r} was erased after this work was asked for"


class RecordsStore(Protocol):
    def upsert_student(
        self,
        student_id: str,
        name: str,
        class_id: str | None,
        *,
        not_erased_since: dt.datetime | None = None,
    ) -> None:
        """Create or update the student; StudentErased if erased at or after not_erased_since."""
        ...

    def rename_student(self, student_id: str, name: str) -> bool:
        """Change the name of an existing student; False if there is no such student."""
        ...

    def get_student(self, student_id: str) -> Student | None: ...

    def list_students(self, class_id: str | None = None) -> list[Student]: ...

    def class_exists(self, class_id: str) -> bool: ...

    def mark_present(
        self, record: AttendanceRecord, *, not_erased_since: dt.datetime | None = None
    ) -> bool:
        """A face's mark: insert unless (class_id, date, period, student_id) has a mark already
        (a face's or a teacher's, which a recognition never overrides) or that register is
        finalized; True if this call inserted it. Either way the record's job is noted among
        the jobs that saw the student. StudentErased, writing nothing, if the student was
        erased at or after not_erased_since."""
        ...

    def set_mark(
        self,
        record: AttendanceRecord,
        *,
        correction: bool = False,
        expected: Expected | None = None,
    ) -> AttendanceRecord | None:
        """A teacher's mark (source "manual"): write it over whatever (class_id, date, period,
        student_id) held, in one atomic step; return what it replaced (None: nothing). The jobs
        noted for the student stay. RegisterFinalized, writing nothing, if that register is
        finalized, unless ``correction`` (an admin's). With ``expected``, only over that mark:
        MarkChanged, writing nothing, if another write came between."""
        ...

    def get_mark(
        self, class_id: str, date: dt.date, period: str, student_id: str
    ) -> AttendanceRecord | None: ...

    def finalize_register(
        self, class_id: str, date: dt.date, period: str, by: str, at: dt.datetime
    ) -> RegisterLock:
        """Sign the register off (once: a second call changes nothing); return its lock."""
        ...

    def register_lock(self, class_id: str, date: dt.date, period: str) -> RegisterLock | None: ...

    def list_register_locks(
        self, class_id: str, date_from: dt.date, date_to: dt.date
    ) -> list[RegisterLock]:
        """The class's signed-off registers dated from ``date_from`` to ``date_to``, by date
        and period."""
        ...

    def attendance_jobs(self, student_id: str) -> set[str]:
        """Every recognition job that marked the student or saw them again."""
        ...

    def list_attendance(
        self,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
        period: str | None = None,
    ) -> list[AttendanceRecord]:
        """Every mark (of every status) matching the filters; period None: of every period."""
        ...

    def get_gallery_pointer(self) -> GalleryPointer | None: ...

    def swap_gallery_pointer(
        self,
        expected_version: int,
        new: GalleryPointer,
        *,
        guard: tuple[str, dt.datetime] | None = None,
    ) -> bool:
        """Point at ``new`` only if the current version is still ``expected_version`` (0: none).
        ``guard`` (student_id, not_erased_since): StudentErased instead, if that student was
        erased at or after that time."""
        ...

    def record_erasure(self, student_id: str, at: dt.datetime) -> None:
        """Leave (or move forward) the student's tombstone."""
        ...

    def erased_since(self, student_ids: Iterable[str], since: dt.datetime) -> set[str]:
        """Those of the students erased at or after ``since``."""
        ...

    def delete_student(self, student_id: str) -> bool:
        """Remove the student and their class memberships; True if they existed."""
        ...

    def delete_attendance(self, student_id: str) -> int:
        """Remove every attendance record of the student; return how many there were."""
        ...

    def put_consent(self, consent: Consent) -> None:
        """Record the student's consent, replacing any earlier one (a withdrawn one too)."""
        ...

    def get_consent(self, student_id: str) -> Consent | None: ...

    def consents(self, student_ids: Iterable[str]) -> dict[str, Consent]:
        """The consent on record of each of the students that has one."""
        ...

    def withdraw_consent(self, student_id: str, by: str, at: dt.datetime) -> Consent | None:
        """Mark the consent withdrawn (once: a second call keeps the first withdrawal); return
        it, or None if the student has no consent on record."""
        ...

    def delete_consent(self, student_id: str) -> bool:
        """Remove the consent on record; True if there was one."""
        ...

    def create_account(self, account: Account) -> bool:
        """Store a new account; False, having changed nothing, if its username is taken."""
        ...

    def put_account(self, account: Account) -> None:
        """Replace an existing account (its role, classes, password, disabled)."""
        ...

    def get_account(self, username: str) -> Account | None: ...

    def list_accounts(self) -> list[Account]:
        """Every account, by username."""
        ...

    def append_audit(self, entry: AuditEntry) -> None: ...

    def list_audit(self, limit: int = 100) -> list[AuditEntry]:
        """The most recent entries first."""
        ...

    def ping(self) -> None:
        """Raise when the store cannot be read (readiness)."""
        ...

    def probe_write(self) -> None:
        """A real write that leaves no record behind: one fixed probe row (or item), overwritten
        each time and never read as data. Raises when the store cannot be written (readiness):
        StoreUnavailable (StoreBusy when it may pass: locked, read-only) or StorageFull."""
        ...
