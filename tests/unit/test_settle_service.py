"""Settling the faces of a recognised class photo, on a real SQLite records store and a job
store kept in a dict: assigning, rejecting, what moves and what stays, and the audit."""

from __future__ import annotations

import datetime as dt

import pytest

from attendance.domain.errors import AppError, NotFound, RegisterFinalized
from attendance.domain.matching import match_quality
from attendance.domain.schemas import (
    AttendanceRecord,
    Box,
    FaceMatch,
    PhotoResult,
    RecognitionResult,
)
from attendance.services import register as registers
from attendance.services import settle
from attendance.stores.records.sqlite import SqliteRecords
from tests.fakes import FakeJobStore

DAY = dt.date(2026, 11, 2)
JOB = "a" * 32
TAKEN = dt.datetime(2026, 11, 2, 8, 55, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def face(student_id=None, distance=None, outcome=None, x=0) -> FaceMatch:
    return FaceMatch(
        box=Box(x=x, y=10, w=80, h=90),
        student_id=student_id,
        name=None,
        distance=distance,
        outcome=outcome or ("recognised" if student_id else "unknown"),
    )


@pytest.fixture
def records(tmp_path) -> SqliteRecords:
    store = SqliteRecords(tmp_path / "attendance.db")
    store.upsert_student("ann", "Ann Example", "room-1")
    store.upsert_student("cara", "Cara Zed", "room-1")
    store.upsert_student("bob", "Bob Other", "room-2")
    return store


@pytest.fixture
def jobs() -> FakeJobStore:
    """One succeeded recognition of room-1, period 1: ann in photo 0 (face 0, 0.30) and photo 1
    (face 1, 0.20, her best); an unknown face; cara in photo 1 (face 0, 0.25)."""
    store = FakeJobStore()
    result = RecognitionResult(
        class_id="room-1",
        date=DAY,
        period="1",
        photos=[
            PhotoResult(
                filename="a.jpg",
                faces=[face("ann", 0.30, x=0), face(x=100)],
                captured_at=TAKEN,
            ),
            PhotoResult(filename="b.jpg", faces=[face("cara", 0.25), face("ann", 0.20, x=200)]),
        ],
        present=["ann", "cara"],
        unknown_faces=1,
        model_version=1,
    )
    store.create(JOB, "recognition", total=2, class_id="room-1")
    store.succeed(JOB, result.model_dump(mode="json"))
    return store


def recognised(records, student_id: str, photo: int, k: int, distance: float) -> None:
    """The face mark the recognition left for the student."""
    assert records.mark_present(
        AttendanceRecord(
            class_id="room-1",
            date=DAY,
            period="1",
            student_id=student_id,
            name=student_id.title(),
            first_seen_at=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
            distance=distance,
            job_id=JOB,
            photo=photo,
            face=k,
            box=Box(x=200 if photo else 0, y=10, w=80, h=90),
        )
    )


def do(records, jobs, photo, k, student_id, *, admin=False):
    return settle.settle(
        records,
        jobs,
        jobs.get(JOB),
        str(photo),
        str(k),
        student_id,
        actor="admin" if admin else "teacher",
        is_admin=admin,
        threshold=0.45,
    )


def mark_of(records, student_id):
    return records.get_mark("room-1", DAY, "1", student_id)


def stored_face(jobs, photo, k) -> dict:
    return jobs.get(JOB).result["photos"][photo]["faces"][k]


def test_assigning_an_unknown_face_marks_the_student_present_by_hand_with_that_face(records, jobs):
    settled = do(records, jobs, 0, 1, "cara")
    row = settled.row
    assert (row.student_id, row.status, row.source, row.marked_by) == (
        "cara",
        "present",
        "manual",
        "teacher",
    )
    assert (row.job_id, row.photo, row.face, row.box) == (JOB, 0, 1, Box(x=100, y=10, w=80, h=90))
    assert row.captured_at == TAKEN
    # The face matched nobody: no distance to grade.
    assert row.distance is None and row.match_quality is None
    assert (settled.face.outcome, settled.face.student_id, settled.face.settled_by) == (
        "assigned",
        "cara",
        "teacher",
    )
    stored = stored_face(jobs, 0, 1)
    assert (stored["outcome"], stored["student_id"], stored["settled_by"]) == (
        "assigned",
        "cara",
        "teacher",
    )
    # The other faces are as they were.
    assert stored_face(jobs, 0, 0)["outcome"] == "recognised"
    entry = records.list_audit(1)[0]
    assert (entry.action, entry.actor, entry.target) == ("assign_face", "teacher", "cara")
    assert entry.detail == {
        "job_id": JOB,
        "photo": 0,
        "face": 1,
        "class_id": "room-1",
        "date": "2026-11-02",
        "period": "1",
        "status_before": None,
        "status_after": "present",
        "correction": False,
    }


def test_assigning_keeps_a_late_mark_late_with_the_face_as_evidence(records, jobs):
    registers.mark(records, "room-1", DAY, "1", "cara", "late", "bus", "teacher", False)
    row = do(records, jobs, 1, 0, "cara").row
    assert (row.status, row.source, row.note, row.photo, row.face) == (
        "late",
        "manual",
        "bus",
        1,
        0,
    )
    # Its own match: the distance stays, and is graded.
    assert row.distance == 0.25 and row.match_quality == "strong"


def test_rejecting_the_evidence_face_moves_the_mark_to_the_next_best_face(records, jobs):
    recognised(records, "ann", 1, 1, 0.20)
    settled = do(records, jobs, 1, 1, None)
    row = settled.row
    assert (row.student_id, row.status, row.source) == ("ann", "present", "face")
    assert (row.photo, row.face, row.distance, row.captured_at) == (0, 0, 0.30, TAKEN)
    assert (settled.face.outcome, settled.face.student_id) == ("rejected", None)
    entry = records.list_audit(1)[0]
    assert (entry.action, entry.target) == ("reject_face", "ann")
    assert entry.detail["evidence_moved_to"] == [0, 0]
    assert entry.detail["status_before"] == entry.detail["status_after"] == "present"

    # And that one too: nothing else showed her, so she is absent, by hand, saying why.
    row = do(records, jobs, 0, 0, None).row
    assert (row.status, row.source, row.marked_by, row.note) == (
        "absent",
        "manual",
        "teacher",
        settle.REJECTED_NOTE,
    )
    assert (row.job_id, row.photo, row.face, row.box) == (None, None, None, None)
    assert records.list_audit(1)[0].detail["status_after"] == "absent"


def test_a_teacher_s_mark_made_while_a_face_is_rejected_is_read_again_not_overwritten(
    records, jobs, monkeypatch
):
    recognised(records, "ann", 1, 1, 0.20)
    read = records.get_mark
    calls = []

    def read_then_a_teacher_marks(*key):
        mark = read(*key)
        calls.append(mark)
        if len(calls) == 1:
            # Between the reject's read and its write, a teacher marks her late by hand.
            registers.mark(records, "room-1", DAY, "1", "ann", "late", "bus", "t2", False)
        return mark

    monkeypatch.setattr(records, "get_mark", read_then_a_teacher_marks)
    row = do(records, jobs, 1, 1, None).row
    # The reject's read, the teacher's own, and the reject's again once its write was refused.
    assert len(calls) == 3
    # The teacher's mark did not rest on this face: it stays, as made.
    assert (row.status, row.source, row.marked_by, row.note) == ("late", "manual", "t2", "bus")
    assert mark_of(records, "ann").status == "late"


def test_rejecting_a_face_leaves_a_mark_from_anything_else_alone(records, jobs):
    registers.mark(records, "room-1", DAY, "1", "ann", "excused", "trip", "teacher", False)
    before = mark_of(records, "ann")
    row = do(records, jobs, 1, 1, None).row
    assert mark_of(records, "ann") == before
    assert (row.status, row.note) == ("excused", "trip")
    # A face of another job as evidence is not this face either.
    recognised(records, "cara", 1, 0, 0.25)
    records.set_mark(mark_of(records, "cara").model_copy(update={"job_id": "b" * 32}))
    do(records, jobs, 1, 0, None)
    assert mark_of(records, "cara").status == "present"
    assert mark_of(records, "cara").job_id == "b" * 32


def test_rejecting_a_face_that_matched_nobody_changes_no_mark(records, jobs):
    settled = do(records, jobs, 0, 1, None)
    assert settled.row is None
    assert records.list_attendance() == []
    assert stored_face(jobs, 0, 1)["outcome"] == "rejected"
    entry = records.list_audit(1)[0]
    assert (entry.action, entry.target, entry.detail["student_id"]) == ("reject_face", JOB, None)


def test_assigning_a_face_to_someone_else_rejects_it_for_whoever_it_was(records, jobs):
    recognised(records, "cara", 1, 0, 0.25)
    row = do(records, jobs, 1, 0, "ann").row
    assert (row.student_id, row.status, row.source, row.photo, row.face) == (
        "ann",
        "present",
        "manual",
        1,
        0,
    )
    # Not her own match: no distance.
    assert row.distance is None
    # Cara had only that face: absent now.
    assert mark_of(records, "cara").status == "absent"
    actions = [e.action for e in records.list_audit(2)]
    assert actions == ["assign_face", "reject_face"]
    # And an assigned face rejected later undoes the assignment.
    row = do(records, jobs, 1, 0, None).row
    assert row.student_id == "ann"
    # Ann's other faces (0,0 and 1,1) were the model's: the mark moves to the best of them.
    assert (row.source, row.photo, row.face, row.distance) == ("face", 1, 1, 0.20)


def test_a_later_recognition_does_not_override_an_assignment(records, jobs):
    do(records, jobs, 0, 1, "cara")
    assigned = mark_of(records, "cara")
    recognised_again = assigned.model_copy(
        update={"source": "face", "job_id": "c" * 32, "photo": 3, "marked_by": None}
    )
    assert records.mark_present(recognised_again) is False
    assert mark_of(records, "cara") == assigned


def test_after_sign_off_a_teacher_is_refused_and_an_admin_corrects(records, jobs):
    registers.finalize(records, "room-1", DAY, "1", "teacher")
    with pytest.raises(RegisterFinalized):
        do(records, jobs, 0, 1, "cara")
    with pytest.raises(RegisterFinalized):
        do(records, jobs, 1, 1, None)
    assert mark_of(records, "cara") is None
    assert stored_face(jobs, 0, 1)["outcome"] == "unknown"

    row = do(records, jobs, 0, 1, "cara", admin=True).row
    assert (row.status, row.marked_by) == ("present", "admin")
    entry = records.list_audit(1)[0]
    assert (entry.action, entry.actor, entry.detail["correction"]) == ("assign_face", "admin", True)


@pytest.mark.parametrize(
    "photo, k, code",
    [
        ("2", "0", "photo_not_found"),
        ("-1", "0", "photo_not_found"),
        ("x", "0", "photo_not_found"),
        ("²", "0", "photo_not_found"),
        ("0", "2", "face_not_found"),
        ("1", "9" * 40, "face_not_found"),
    ],
)
def test_a_photo_or_face_the_job_has_not_is_404(records, jobs, photo, k, code):
    with pytest.raises(NotFound) as err:
        settle.settle(records, jobs, jobs.get(JOB), photo, k, "ann", actor="t", is_admin=False)
    assert err.value.code == code


@pytest.mark.parametrize(
    "student, code", [("zed", "unknown_student"), ("bob", "student_not_in_class")]
)
def test_a_student_not_in_the_class_is_404_and_changes_nothing(records, jobs, student, code):
    with pytest.raises(NotFound) as err:
        do(records, jobs, 0, 1, student)
    assert err.value.code == code
    assert records.list_attendance() == [] and records.list_audit() == []
    assert stored_face(jobs, 0, 1)["outcome"] == "unknown"


def test_only_a_succeeded_recognition_has_faces_to_settle(records, jobs):
    jobs.create("b" * 32, "recognition", total=1, class_id="room-1")
    jobs.create("e" * 32, "enrollment", total=1)
    jobs.succeed("e" * 32, {"student_id": "ann", "accepted_photos": 1, "rejected": []})
    for job_id in ("b" * 32, "e" * 32):
        with pytest.raises(AppError) as err:
            settle.settle(
                records, jobs, jobs.get(job_id), "0", "0", "ann", actor="t", is_admin=False
            )
        assert (err.value.status, err.value.code) == (409, "job_not_finished")


def test_match_quality_is_strong_within_four_fifths_of_the_threshold():
    assert match_quality(None, 0.45) is None
    assert match_quality(0.0, 0.45) == "strong"
    assert match_quality(0.36, 0.45) == "strong"
    assert match_quality(0.3601, 0.45) == "borderline"
    assert match_quality(0.45, 0.45) == "borderline"
