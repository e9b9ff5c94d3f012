"""The register's service on a real SQLite records store: rows, hand marks, sign-off, audit."""

from __future__ import annotations

import datetime as dt

import pytest

from attendance.domain.errors import NotFound, RegisterFinalized
from attendance.domain.schemas import AttendanceRecord
from attendance.services import register as registers
from attendance.stores.records.sqlite import SqliteRecords

DAY = dt.date(2026, 11, 2)


@pytest.fixture
def records(tmp_path) -> SqliteRecords:
    store = SqliteRecords(tmp_path / "attendance.db")
    store.upsert_student("cara", "Cara Zed", "room-1")
    store.upsert_student("ann", "Ann Example", "room-1")
    store.upsert_student("bob", "Bob Other", "room-2")
    return store


def face_mark(
    student_id: str, name: str, period: str = "", job: str = "j" * 32
) -> AttendanceRecord:
    """What a recognition writes for a student it saw."""
    return AttendanceRecord(
        class_id="room-1",
        date=DAY,
        period=period,
        student_id=student_id,
        name=name,
        first_seen_at=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
        distance=0.21,
        job_id=job,
    )


def rows(records, period: str = "", date: dt.date = DAY) -> dict[str, tuple]:
    found = registers.register(records, "room-1", date, period)
    return {r.student_id: (r.status, r.source) for r in found.rows}


def mark(records, student_id: str, status: str, *, period: str = "", admin: bool = False, **kw):
    return registers.mark(
        records,
        kw.pop("class_id", "room-1"),
        DAY,
        period,
        student_id,
        status,
        kw.pop("note", None),
        actor="admin" if admin else "teacher",
        is_admin=admin,
    )


def test_nobody_marked_is_absent_and_the_roster_is_by_name(records):
    found = registers.register(records, "room-1", DAY, "")
    assert [r.student_id for r in found.rows] == ["ann", "cara"]
    assert [(r.status, r.source, r.marked_by) for r in found.rows] == [
        ("absent", None, None),
        ("absent", None, None),
    ]
    assert found.finalized is None and found.period == "" and found.date == DAY


def test_a_face_mark_shows_as_present_with_its_evidence(records):
    assert records.mark_present(face_mark("ann", "Ann Example"))
    row = registers.register(records, "room-1", DAY, "").rows[0]
    assert (row.student_id, row.status, row.source) == ("ann", "present", "face")
    assert row.job_id == "j" * 32 and row.distance == pytest.approx(0.21)
    assert rows(records)["cara"] == ("absent", None)


def test_an_unknown_class_has_no_register(records):
    with pytest.raises(NotFound) as err:
        registers.register(records, "room-9", DAY, "")
    assert err.value.code == "unknown_class"


def test_a_hand_mark_replaces_a_face_mark_and_says_what_it_was(records):
    records.mark_present(face_mark("ann", "Ann Example"))
    before, after = mark(records, "ann", "late", note="bus was late")
    assert before is not None and (before.status, before.source) == ("present", "face")
    assert (after.status, after.source, after.marked_by, after.note) == (
        "late",
        "manual",
        "teacher",
        "bus was late",
    )
    assert after.job_id is None and after.distance is None
    stored = records.get_mark("room-1", DAY, "", "ann")
    assert stored is not None and stored.status == "late" and stored.source == "manual"
    # The first mark's time stays: it is when the student was first marked in this register.
    assert stored.first_seen_at == dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    assert rows(records) == {"ann": ("late", "manual"), "cara": ("absent", None)}


def test_each_status_can_be_set_and_absent_by_hand_is_manual(records):
    for status in ("present", "late", "excused", "absent"):
        _, after = mark(records, "cara", status)
        assert after.status == status
        assert rows(records)["cara"] == (status, "manual")


def test_periods_are_registers_of_their_own(records):
    mark(records, "ann", "excused", period="1")
    records.mark_present(face_mark("cara", "Cara Zed", period="2"))
    assert rows(records, "1") == {"ann": ("excused", "manual"), "cara": ("absent", None)}
    assert rows(records, "2") == {"ann": ("absent", None), "cara": ("present", "face")}
    assert rows(records, "") == {"ann": ("absent", None), "cara": ("absent", None)}
    assert rows(records, "1", date=DAY + dt.timedelta(days=1))["ann"] == ("absent", None)


def test_a_face_mark_after_a_hand_mark_changes_nothing(records):
    mark(records, "ann", "excused", note="dentist")
    assert records.mark_present(face_mark("ann", "Ann Example")) is False
    row = registers.register(records, "room-1", DAY, "").rows[0]
    assert (row.status, row.source, row.note, row.job_id) == ("excused", "manual", "dentist", None)


def test_each_mark_is_audited_with_the_status_before_and_after(records):
    mark(records, "ann", "late", note="bus")
    mark(records, "ann", "present", period="")
    newest, oldest = records.list_audit(10)[:2]
    assert (oldest.action, oldest.actor, oldest.target) == ("mark_attendance", "teacher", "ann")
    assert oldest.detail == {
        "class_id": "room-1",
        "date": "2026-11-02",
        "period": "",
        "status_before": None,
        "status_after": "late",
        "note": "bus",
    }
    assert newest.action == "mark_attendance"
    assert (newest.detail["status_before"], newest.detail["status_after"]) == ("late", "present")


def test_after_sign_off_a_teacher_is_refused_and_an_admin_corrects(records):
    mark(records, "ann", "present")
    lock = registers.finalize(records, "room-1", DAY, "", "teacher")
    assert (lock.class_id, lock.date, lock.period, lock.finalized_by) == (
        "room-1",
        DAY,
        "",
        "teacher",
    )
    assert registers.register(records, "room-1", DAY, "").finalized == lock
    entry = records.list_audit(1)[0]
    assert (entry.action, entry.target, entry.detail) == (
        "finalize_register",
        "room-1",
        {"date": "2026-11-02", "period": ""},
    )

    with pytest.raises(RegisterFinalized):
        mark(records, "ann", "absent")
    assert rows(records)["ann"] == ("present", "manual")
    assert records.list_audit(1)[0].action == "finalize_register"

    before, after = mark(records, "ann", "excused", admin=True, note="medical note")
    assert before is not None and before.status == "present"
    assert (after.status, after.marked_by) == ("excused", "admin")
    assert rows(records)["ann"] == ("excused", "manual")
    correction = records.list_audit(1)[0]
    assert (correction.action, correction.actor) == ("correct_attendance", "admin")
    assert (correction.detail["status_before"], correction.detail["status_after"]) == (
        "present",
        "excused",
    )


def test_sign_off_is_per_period_and_once(records):
    first = registers.finalize(records, "room-1", DAY, "1", "teacher")
    again = registers.finalize(records, "room-1", DAY, "1", "admin")
    assert again == first
    assert [e.action for e in records.list_audit(10)].count("finalize_register") == 1
    # Another period of the same day is still open to the teacher.
    _, after = mark(records, "ann", "late", period="2")
    assert after.status == "late"
    assert records.list_audit(1)[0].action == "mark_attendance"
    # A signed-off register takes no face marks either.
    assert records.mark_present(face_mark("cara", "Cara Zed", period="1")) is False
    assert rows(records, "1")["cara"] == ("absent", None)


def test_an_empty_class_cannot_be_signed_off(records):
    with pytest.raises(NotFound) as err:
        registers.finalize(records, "room-9", DAY, "", "teacher")
    assert err.value.code == "unknown_class"
    assert records.register_lock("room-9", DAY, "") is None


def test_an_unknown_student_is_refused(records):
    with pytest.raises(NotFound) as err:
        mark(records, "zed", "present")
    assert err.value.code == "unknown_student"
    assert records.list_audit(10) == []


def test_a_student_of_another_class_is_refused(records):
    with pytest.raises(NotFound) as err:
        mark(records, "bob", "present")
    assert err.value.code == "student_not_in_class"
    assert records.get_mark("room-1", DAY, "", "bob") is None
    assert records.list_audit(10) == []
