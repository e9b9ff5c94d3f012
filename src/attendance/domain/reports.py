"""Shapes of attendance over a date range: one student's history, and a class's absences.

A session is a register that was held: one with a mark in it, or one signed off. A student
counts as attended in a session when their status is one of ATTENDED (present, late); a session
where nothing marked them counts as absent, as in the register itself.
"""

from __future__ import annotations

import datetime as dt

from attendance.domain.schemas import AttendanceStatus, MarkSource, Strict


class StatusCounts(Strict):
    sessions: int = 0
    present: int = 0
    late: int = 0
    excused: int = 0
    absent: int = 0

    @property
    def attended(self) -> int:
        return self.present + self.late

    @property
    def rate(self) -> float | None:
        """The share of sessions attended; None where there were none."""
        return round(self.attended / self.sessions, 4) if self.sessions else None

    def add(self, status: AttendanceStatus) -> None:
        self.sessions += 1
        setattr(self, status, getattr(self, status) + 1)


class HistoryRow(Strict):
    """One session of one of the student's classes, and their status in it."""

    class_id: str
    date: dt.date
    period: str
    status: AttendanceStatus
    source: MarkSource | None = None
    marked_by: str | None = None
    marked_at: dt.datetime | None = None
    note: str | None = None


class StudentHistory(Strict):
    student_id: str
    name: str
    date_from: dt.date
    date_to: dt.date
    sessions: int
    attended: int
    rate: float | None
    counts: StatusCounts
    rows: list[HistoryRow]


class AbsenceRow(Strict):
    """A student of the class over the range: their counts, and the sessions they missed."""

    student_id: str
    name: str
    sessions: int
    attended: int
    absent: int
    late: int
    excused: int
    rate: float | None
    # "YYYY-MM-DD" for a whole day's register, "YYYY-MM-DD <period>" for a period's.
    absent_on: list[str]


class ClassAbsences(Strict):
    class_id: str
    date_from: dt.date
    date_to: dt.date
    sessions: int
    rows: list[AbsenceRow]
