"""Attendance rates and the CSV export: pure functions over API records, unit-tested.

A record counts as attendance only when its status is one of ATTENDED (present, late): an
excused or absent mark is a student the register names but who was not there. With periods, a
student is present on a day when any of that day's registers says so.

* Per day and class: present / roster size, where present counts distinct students who attended
  that class that day and the roster size is the class's current roster (never less than present,
  so a rate is at most 100 % even when someone has since left the class).
* Per student: days present / days the class met, where a day the class met is a (class, date)
  with at least one attendance record in the chosen range.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from attendance.domain.schemas import ATTENDED, AttendanceRecord, Student


@dataclass(frozen=True)
class DailyRate:
    date: dt.date
    class_id: str
    present: int
    roster: int

    @property
    def rate(self) -> float:
        return self.present / self.roster if self.roster else 0.0


@dataclass(frozen=True)
class StudentRate:
    student_id: str
    name: str
    present_days: int
    class_days: int

    @property
    def rate(self) -> float:
        return self.present_days / self.class_days if self.class_days else 0.0


def roster_sizes(students: Iterable[Student]) -> dict[str, int]:
    sizes: Counter[str] = Counter()
    for student in students:
        sizes.update(set(student.class_ids))
    return dict(sizes)


def daily_rates(records: Iterable[AttendanceRecord], sizes: Mapping[str, int]) -> list[DailyRate]:
    """One row per (date, class) that has records, oldest first."""
    present: dict[tuple[dt.date, str], set[str]] = {}
    for record in records:
        # A day with only excused or absent marks still met: its row says 0 present.
        day = present.setdefault((record.date, record.class_id), set())
        if record.status in ATTENDED:
            day.add(record.student_id)
    return [
        DailyRate(date, class_id, len(ids), max(sizes.get(class_id, 0), len(ids)))
        for (date, class_id), ids in sorted(present.items())
    ]


def student_rates(
    records: Iterable[AttendanceRecord],
    roster: Iterable[Student],
    class_id: str | None = None,
) -> list[StudentRate]:
    """Every roster student (and anyone recorded but no longer on it), by rate then name.

    ``class_id`` narrows both the records and each student's classes to that class.
    """
    records = [r for r in records if class_id is None or r.class_id == class_id]
    sessions = {(r.class_id, r.date) for r in records}
    attended: dict[str, set[tuple[str, dt.date]]] = {}
    names: dict[str, str] = {}
    classes: dict[str, set[str]] = {}
    for record in records:
        seen = attended.setdefault(record.student_id, set())
        if record.status in ATTENDED:
            seen.add((record.class_id, record.date))
        names.setdefault(record.student_id, record.name)
        classes.setdefault(record.student_id, set()).add(record.class_id)
    for student in roster:
        names[student.student_id] = student.name
        mine = set(student.class_ids) if class_id is None else {class_id} & set(student.class_ids)
        if class_id is not None and not mine:
            continue
        classes.setdefault(student.student_id, set()).update(mine)
    rates = []
    for student_id, name in names.items():
        if student_id not in classes:
            continue
        held = {s for s in sessions if s[0] in classes[student_id]}
        if not held:  # none of the student's classes met in the range: no rate to speak of
            continue
        present = attended.get(student_id, set()) & held
        rates.append(StudentRate(student_id, name, len(present), len(held)))
    rates.sort(key=lambda r: (-r.rate, r.name.lower(), r.student_id))
    return rates


# --- the charts in words: what a screen reader says for a chart, and what anyone can read ------


def describe_days(days: Sequence[DailyRate], with_rates: bool) -> str:
    """One sentence for the per-day chart: its extent and its highest and lowest day (by rate,
    or by students present when there are no rosters to make rates of)."""
    if not days:
        return "No attendance in this range."

    def value(d: DailyRate) -> float:
        return d.rate if with_rates else d.present

    def shown(d: DailyRate) -> str:
        amount = f"{100 * d.rate:.0f} %" if with_rates else f"{d.present} present"
        return f"{amount} ({d.class_id} on {d.date.isoformat()})"

    what = "Attendance rate" if with_rates else "Students present"
    dates, classes = len({d.date for d in days}), len({d.class_id for d in days})
    high = max(days, key=lambda d: (value(d), d.date))
    low = min(days, key=lambda d: (value(d), d.date))
    text = f"{what} on {dates} day(s) in {classes} class(es): highest {shown(high)}"
    if low is not high:
        text += f", lowest {shown(low)}"
    return text + "."


def describe_students(rates: Sequence[StudentRate], below: float = 0.8) -> str:
    """One sentence for the per-student chart: how many, the lowest, and how many fall below
    ``below`` (a share: 0.8 is 80 %)."""
    if not rates:
        return "No class met in this range."
    low = min(rates, key=lambda r: (r.rate, r.name))
    under = sum(1 for r in rates if r.rate < below)
    return (
        f"{len(rates)} student(s); the lowest rate is {low.name}'s, {100 * low.rate:.0f} % "
        f"({low.present_days} of {low.class_days} days); {under} below {100 * below:.0f} %."
    )
