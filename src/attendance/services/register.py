"""A class's register for one date and period: read it, mark a student by hand, sign it off.

A register lists the students enrolled in the class now; a student nothing marked is absent.
Marks by hand replace whatever was there (a face's or an earlier hand's); a recognition never
replaces a mark (RecordsStore.mark_present), so a teacher's correction survives later photos.
Once signed off, only an admin changes the register, and each change is audited as a correction.
"""

from __future__ import annotations

import datetime as dt

from attendance.domain.errors import NotFound, RegisterFinalized
from attendance.domain.matching import match_quality
from attendance.domain.schemas import (
    AttendanceRecord,
    AttendanceStatus,
    AuditEntry,
    Register,
    RegisterLock,
    RegisterRow,
    Student,
)
from attendance.stores.records import Expected, RecordsStore


def row_of(
    student_id: str, name: str, mark: AttendanceRecord | None, threshold: float | None = None
) -> RegisterRow:
    """The register's row of a student from their mark; ``threshold`` (the settings'
    match_threshold) grades the evidence's distance, None leaves it ungraded."""
    if mark is None:
        return RegisterRow(student_id=student_id, name=name, status="absent")
    return RegisterRow(
        student_id=student_id,
        name=name,
        status=mark.status,
        source=mark.source,
        marked_by=mark.marked_by,
        marked_at=mark.marked_at,
        note=mark.note,
        job_id=mark.job_id,
        distance=mark.distance,
        photo=mark.photo,
        face=mark.face,
        box=mark.box,
        captured_at=mark.captured_at,
        match_quality=None if threshold is None else match_quality(mark.distance, threshold),
    )


def _roster(records: RecordsStore, class_id: str) -> list[Student]:
    students = records.list_students(class_id)
    if not students:
        raise NotFound(f"no student is enrolled in class {class_id!r}", code="unknown_class")
    return sorted(students, key=lambda s: (s.name.casefold(), s.student_id))


def register(
    records: RecordsStore,
    class_id: str,
    date: dt.date,
    period: str,
    *,
    threshold: float | None = None,
) -> Register:
    students = _roster(records, class_id)
    marks = {
        m.student_id: m
        for m in records.list_attendance(
            class_id=class_id, date_from=date, date_to=date, period=period
        )
    }
    return Register(
        class_id=class_id,
        date=date,
        period=period,
        finalized=records.register_lock(class_id, date, period),
        rows=[row_of(s.student_id, s.name, marks.get(s.student_id), threshold) for s in students],
    )


def _finalized_message(class_id: str, date: dt.date, period: str) -> str:
    which = f"period {period!r}" if period else "the whole day"
    return (
        f"the register of class {class_id!r} on {date.isoformat()} ({which}) is signed off; "
        "only an admin can correct it"
    )


def enrolled_student(records: RecordsStore, class_id: str, student_id: str) -> Student:
    """The student, if enrolled in the class; else NotFound saying which it is not."""
    student = records.get_student(student_id)
    if student is None:
        raise NotFound(f"no student {student_id!r}", code="unknown_student")
    if class_id not in student.class_ids:
        raise NotFound(
            f"student {student_id!r} is not enrolled in class {class_id!r}",
            code="student_not_in_class",
        )
    return student


def locked_for(
    records: RecordsStore, class_id: str, date: dt.date, period: str, is_admin: bool
) -> bool:
    """Whether the register is signed off (an admin's change is then a correction);
    RegisterFinalized if it is and the caller is not an admin."""
    locked = records.register_lock(class_id, date, period) is not None
    if locked and not is_admin:
        raise RegisterFinalized(_finalized_message(class_id, date, period))
    return locked


def write_mark(
    records: RecordsStore,
    record: AttendanceRecord,
    locked: bool,
    is_admin: bool,
    expected: Expected | None = None,
) -> tuple[AttendanceRecord | None, bool]:
    """set_mark, as a correction where the register is signed off; return what it replaced
    and whether it was a correction (the register may be signed off between the check and the
    write: the store refuses, and only an admin's write goes on, as a correction). With
    ``expected``, only over that mark (else MarkChanged)."""
    try:
        return records.set_mark(record, correction=locked, expected=expected), locked
    except RegisterFinalized:
        if not is_admin:
            raise RegisterFinalized(
                _finalized_message(record.class_id, record.date, record.period)
            ) from None
        return records.set_mark(record, correction=True, expected=expected), True


def mark(
    records: RecordsStore,
    class_id: str,
    date: dt.date,
    period: str,
    student_id: str,
    status: AttendanceStatus,
    note: str | None,
    actor: str,
    is_admin: bool,
    *,
    threshold: float | None = None,
) -> tuple[RegisterRow | None, RegisterRow]:
    """Set the student's mark by hand; return the register row before (None: nothing marked
    them) and after."""
    student = enrolled_student(records, class_id, student_id)
    locked = locked_for(records, class_id, date, period, is_admin)
    now = dt.datetime.now(dt.UTC)
    earlier = records.get_mark(class_id, date, period, student_id)
    record = AttendanceRecord(
        class_id=class_id,
        date=date,
        period=period,
        student_id=student_id,
        name=student.name,
        # When the student was first marked in this register, whoever marked them.
        first_seen_at=earlier.first_seen_at if earlier is not None else now,
        status=status,
        source="manual",
        marked_by=actor,
        marked_at=now,
        note=note,
    )
    replaced, locked = write_mark(records, record, locked, is_admin)
    before = None if replaced is None else row_of(student_id, student.name, replaced, threshold)
    after = row_of(student_id, student.name, record, threshold)
    records.append_audit(
        AuditEntry(
            at=now,
            actor=actor,
            action="correct_attendance" if locked else "mark_attendance",
            target=student_id,
            detail={
                "class_id": class_id,
                "date": date.isoformat(),
                "period": period,
                "status_before": None if before is None else before.status,
                "status_after": status,
                "note": note,
            },
        )
    )
    return before, after


def finalize(
    records: RecordsStore, class_id: str, date: dt.date, period: str, actor: str
) -> RegisterLock:
    """Sign the register off; signing it off again changes nothing and returns its lock."""
    _roster(records, class_id)
    existing = records.register_lock(class_id, date, period)
    if existing is not None:
        return existing
    now = dt.datetime.now(dt.UTC)
    lock = records.finalize_register(class_id, date, period, actor, now)
    records.append_audit(
        AuditEntry(
            at=now,
            actor=actor,
            action="finalize_register",
            target=class_id,
            detail={"date": date.isoformat(), "period": period},
        )
    )
    return lock
