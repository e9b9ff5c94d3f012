"""Attendance over a date range, from the registers: one student's history and attendance rate,
and a class's absences. Both count the sessions that were held (domain/reports.py) and read a
student nothing marked in a session as absent, as the register does."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from attendance.domain.errors import NotFound
from attendance.domain.reports import (
    AbsenceRow,
    ClassAbsences,
    HistoryRow,
    StatusCounts,
    StudentHistory,
)
from attendance.domain.schemas import AttendanceRecord, Student
from attendance.stores.records import RecordsStore

Session = tuple[dt.date, str]  # a register of the class: its date and period


def _sessions(
    records: RecordsStore, class_id: str, date_from: dt.date, date_to: dt.date
) -> tuple[list[Session], dict[Session, dict[str, AttendanceRecord]]]:
    """The class's sessions in the range, by date and period, and each one's marks by
    student."""
    marks: dict[Session, dict[str, AttendanceRecord]] = defaultdict(dict)
    for mark in records.list_attendance(class_id=class_id, date_from=date_from, date_to=date_to):
        marks[(mark.date, mark.period)][mark.student_id] = mark
    held = set(marks)
    held.update(
        (lock.date, lock.period)
        for lock in records.list_register_locks(class_id, date_from, date_to)
    )
    return sorted(held), marks


def _label(session: Session) -> str:
    day, period = session
    return f"{day.isoformat()} {period}" if period else day.isoformat()


def student_history(
    records: RecordsStore,
    student_id: str,
    date_from: dt.date,
    date_to: dt.date,
    classes: set[str] | None = None,
) -> StudentHistory:
    """Every session of the student's classes (only ``classes`` where given) in the range,
    with their status in each. A class they have marks in but have left still counts."""
    student = records.get_student(student_id)
    if student is None:
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    own = records.list_attendance(student_id=student_id, date_from=date_from, date_to=date_to)
    class_ids = set(student.class_ids) | {m.class_id for m in own}
    if classes is not None:
        class_ids &= classes
    counts = StatusCounts()
    rows = []
    for class_id in sorted(class_ids):
        sessions, marks = _sessions(records, class_id, date_from, date_to)
        for session in sessions:
            mark = marks[session].get(student_id)
            status = mark.status if mark else "absent"
            counts.add(status)
            rows.append(
                HistoryRow(
                    class_id=class_id,
                    date=session[0],
                    period=session[1],
                    status=status,
                    source=mark.source if mark else None,
                    marked_by=mark.marked_by if mark else None,
                    marked_at=mark.marked_at if mark else None,
                    note=mark.note if mark else None,
                )
            )
    rows.sort(key=lambda r: (r.date, r.class_id, r.period))
    return StudentHistory(
        student_id=student.student_id,
        name=student.name,
        date_from=date_from,
        date_to=date_to,
        sessions=counts.sessions,
        attended=counts.attended,
        rate=counts.rate,
        counts=counts,
        rows=rows,
    )


def class_absences(
    records: RecordsStore, class_id: str, date_from: dt.date, date_to: dt.date
) -> ClassAbsences:
    """Each student enrolled in the class now, with their absences over the range, most
    absences first."""
    students: list[Student] = records.list_students(class_id)
    if not students:
        raise NotFound(f"no student is enrolled in class {class_id!r}", code="unknown_class")
    sessions, marks = _sessions(records, class_id, date_from, date_to)
    rows = []
    for student in students:
        counts = StatusCounts()
        missed = []
        for session in sessions:
            mark = marks[session].get(student.student_id)
            status = mark.status if mark else "absent"
            counts.add(status)
            if status == "absent":
                missed.append(_label(session))
        rows.append(
            AbsenceRow(
                student_id=student.student_id,
                name=student.name,
                sessions=counts.sessions,
                attended=counts.attended,
                absent=counts.absent,
                late=counts.late,
                excused=counts.excused,
                rate=counts.rate,
                absent_on=missed,
            )
        )
    rows.sort(key=lambda r: (-r.absent, r.name.casefold(), r.student_id))
    return ClassAbsences(
        class_id=class_id,
        date_from=date_from,
        date_to=date_to,
        sessions=len(sessions),
        rows=rows,
    )
