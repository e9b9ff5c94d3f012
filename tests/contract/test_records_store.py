"""The RecordsStore contract, on SQLite and on DynamoDB (moto's server over HTTP)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from attendance.domain.schemas import AttendanceRecord
from attendance.stores.records import GalleryPointer

D = dt.date
SEEN = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)


def record(class_id="c1", day=D(2026, 1, 5), student_id="ann", **extra) -> AttendanceRecord:
    return AttendanceRecord(
        class_id=class_id,
        date=day,
        student_id=student_id,
        name=extra.pop("name", student_id.title()),
        first_seen_at=extra.pop("first_seen_at", SEEN),
        distance=extra.pop("distance", 0.2),
        **extra,
    )


# --- students -----------------------------------------------------------------------------------


def test_students_upsert_rename_and_collect_classes(records):
    assert records.get_student("ann") is None
    records.upsert_student("ann", "Ann", "c1")
    records.upsert_student("ann", "Ann B", "c2")
    records.upsert_student("ann", "Ann B", "c1")  # again: no duplicate class
    ann = records.get_student("ann")
    assert ann.class_ids == ["c1", "c2"] and ann.name == "Ann B"
    records.upsert_student("bob", "Bob", None)
    assert records.get_student("bob").class_ids == []
    assert records.class_exists("c2") and not records.class_exists("c9")
    assert [s.student_id for s in records.list_students()] == ["ann", "bob"]
    assert [s.student_id for s in records.list_students("c1")] == ["ann"]
    assert records.list_students("c9") == []


def test_a_class_roster_of_any_size_is_listed_whole_and_sorted(records):
    # More than one page of members and more than one BatchGetItem (100 keys) on DynamoDB.
    ids = [f"s{i:03d}" for i in range(105)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda sid: records.upsert_student(sid, f"N {sid}", "big"), reversed(ids)))
    records.upsert_student("other", "Other", "small")
    roster = records.list_students("big")
    assert [s.student_id for s in roster] == ids
    assert all(s.name == f"N {s.student_id}" and s.class_ids == ["big"] for s in roster)
    assert len(records.list_students()) == 106


# --- attendance ---------------------------------------------------------------------------------


def test_attendance_is_recorded_once_per_class_date_student(records):
    records.upsert_student("ann", "Ann", "c1")
    records.upsert_student("ann", "Ann B", "c2")
    assert records.get_student("ann").class_ids == ["c1", "c2"]
    assert records.get_student("ann").name == "Ann B"
    rec = record(name="Ann")
    assert records.mark_present(rec) is True
    assert records.mark_present(rec.model_copy(update={"distance": 0.1})) is False
    assert records.mark_present(rec.model_copy(update={"date": D(2026, 1, 6)})) is True
    assert len(records.list_attendance(class_id="c1")) == 2
    got = records.list_attendance(class_id="c1", date_from=D(2026, 1, 6))
    assert [r.date for r in got] == [D(2026, 1, 6)]
    assert records.list_attendance(student_id="bob") == []
    assert records.class_exists("c2") and not records.class_exists("c9")
    # The first sighting stays.
    assert records.list_attendance(class_id="c1", date_to=D(2026, 1, 5))[0].distance == 0.2


def test_records_round_trip_every_field(records):
    seen = dt.datetime(2026, 3, 1, 8, 15, 30, 123456, tzinfo=dt.UTC)
    with_job = record(day=D(2026, 3, 1), first_seen_at=seen, distance=0.123456789, job_id="j" * 32)
    without = record(day=D(2026, 3, 1), student_id="bob", distance=0.0)
    records.mark_present(with_job)
    records.mark_present(without)
    assert records.list_attendance(class_id="c1") == [with_job, without]


def test_concurrent_marks_of_the_same_record_insert_it_once(records):
    rec = record()
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: records.mark_present(rec.model_copy(update={"distance": i / 100})),
                range(8),
            )
        )
    assert results.count(True) == 1
    assert len(records.list_attendance()) == 1


def seed_term(records) -> list[AttendanceRecord]:
    """Two classes over five days; 'ann' is in both, the others in one each."""
    made = []
    for day in range(1, 6):
        for class_id, students in (("c1", ["ann", "bob", "cid"]), ("c2", ["ann", "dee"])):
            for sid in students:
                if (sid, day) in {("bob", 2), ("dee", 4)}:
                    continue  # absent
                rec = record(class_id=class_id, day=D(2026, 2, day), student_id=sid)
                assert records.mark_present(rec)
                made.append(rec)
    return made


def key(r: AttendanceRecord):
    return (r.date, r.class_id, r.student_id)


def test_one_class_on_one_date(records):
    made = seed_term(records)
    day = D(2026, 2, 2)
    got = records.list_attendance(class_id="c1", date_from=day, date_to=day)
    assert got == [r for r in made if r.class_id == "c1" and r.date == day]
    assert [r.student_id for r in got] == ["ann", "cid"]


def test_one_class_over_a_date_range_across_pages(records):
    made = seed_term(records)
    got = records.list_attendance(class_id="c1", date_from=D(2026, 2, 2), date_to=D(2026, 2, 4))
    want = sorted(
        (r for r in made if r.class_id == "c1" and D(2026, 2, 2) <= r.date <= D(2026, 2, 4)),
        key=key,
    )
    assert got == want and len(got) == 8
    assert records.list_attendance(class_id="c1") == sorted(
        (r for r in made if r.class_id == "c1"), key=key
    )
    assert len(records.list_attendance(class_id="c1", date_to=D(2026, 2, 1))) == 3


def test_one_students_history_over_a_date_range(records):
    made = seed_term(records)
    got = records.list_attendance(student_id="ann", date_from=D(2026, 2, 4))
    assert got == sorted(
        (r for r in made if r.student_id == "ann" and r.date >= D(2026, 2, 4)), key=key
    )
    assert [(r.date.day, r.class_id) for r in got] == [(4, "c1"), (4, "c2"), (5, "c1"), (5, "c2")]
    assert [
        r.date.day
        for r in records.list_attendance(student_id="ann", class_id="c2", date_to=D(2026, 2, 2))
    ] == [1, 2]
    assert len(records.list_attendance(student_id="bob")) == 4


def test_every_class_over_a_date_range_and_empty_ranges(records):
    made = seed_term(records)
    got = records.list_attendance(date_from=D(2026, 2, 5))
    assert got == sorted((r for r in made if r.date == D(2026, 2, 5)), key=key)
    assert records.list_attendance() == sorted(made, key=key)
    assert (
        records.list_attendance(class_id="c1", date_from=D(2026, 2, 4), date_to=D(2026, 2, 3)) == []
    )
    assert records.list_attendance(class_id="c1", date_from=D(2027, 1, 1)) == []
    assert records.list_attendance(class_id="nope") == []


# --- gallery pointer ----------------------------------------------------------------------------


def test_pointer_swap_is_conditional(records):
    assert records.get_gallery_pointer() is None
    assert records.swap_gallery_pointer(0, GalleryPointer(1, "k1"))
    assert not records.swap_gallery_pointer(0, GalleryPointer(1, "k-other"))
    assert records.get_gallery_pointer() == GalleryPointer(1, "k1")
    assert not records.swap_gallery_pointer(2, GalleryPointer(3, "k3"))
    assert records.swap_gallery_pointer(1, GalleryPointer(2, "k2"))
    assert records.get_gallery_pointer() == GalleryPointer(2, "k2")


def test_concurrent_swaps_from_one_version_have_one_winner(records):
    records.swap_gallery_pointer(0, GalleryPointer(1, "base"))
    with ThreadPoolExecutor(8) as pool:
        won = list(
            pool.map(
                lambda i: records.swap_gallery_pointer(1, GalleryPointer(2, f"k{i}")), range(8)
            )
        )
    assert won.count(True) == 1
    assert records.get_gallery_pointer() == GalleryPointer(2, f"k{won.index(True)}")


def test_ping_answers_when_usable(records):
    records.ping()


def test_delete_student_and_their_attendance(records):
    import datetime as dt

    from attendance.domain.schemas import AttendanceRecord

    records.upsert_student("gone", "Gone", "c1")
    records.upsert_student("gone", "Gone", "c2")
    records.upsert_student("kept", "Kept", "c1")
    for sid, cls, day in (("gone", "c1", 1), ("gone", "c2", 2), ("kept", "c1", 1)):
        records.mark_present(
            AttendanceRecord(
                class_id=cls,
                date=dt.date(2026, 3, day),
                student_id=sid,
                name=sid,
                first_seen_at=dt.datetime(2026, 3, day, 9, tzinfo=dt.UTC),
                distance=0.1,
            )
        )
    assert records.delete_attendance("gone") == 2
    assert records.delete_student("gone") is True
    assert records.delete_student("gone") is False
    assert records.get_student("gone") is None
    assert [s.student_id for s in records.list_students("c1")] == ["kept"]
    assert records.list_students("c2") == []
    assert [r.student_id for r in records.list_attendance()] == ["kept"]
    assert records.delete_attendance("gone") == 0


def test_audit_log_newest_first(records):
    import datetime as dt

    from attendance.domain.schemas import AuditEntry

    base = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    for i in range(5):
        records.append_audit(
            AuditEntry(
                at=base + dt.timedelta(minutes=i),
                actor="admin",
                action="enroll",
                target=f"s{i}",
                detail={"photos": i},
            )
        )
    got = records.list_audit(limit=3)
    assert [e.target for e in got] == ["s4", "s3", "s2"]
    assert got[0].detail == {"photos": 4} and got[0].actor == "admin"


# --- erasure: tombstones that every write checks ----------------------------------------------

ASKED = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)


def test_a_tombstone_refuses_work_asked_for_before_it_and_allows_later_work(records):
    import pytest

    from attendance.domain.errors import StudentErased

    records.upsert_student("ann", "Ann", "c1")
    assert records.erased_since(["ann", "bob"], ASKED) == set()
    erased = ASKED + dt.timedelta(minutes=1)
    records.record_erasure("ann", erased)
    records.record_erasure("ann", erased - dt.timedelta(hours=1))  # an older one never wins
    assert records.erased_since(["ann", "bob"], ASKED) == {"ann"}
    assert records.erased_since(["ann"], erased) == {"ann"}
    assert records.erased_since(["ann"], erased + dt.timedelta(microseconds=1)) == set()
    records.delete_student("ann")

    # Asked for before the erasure: every write that could bring Ann back is refused.
    with pytest.raises(StudentErased):
        records.mark_present(record(student_id="ann", job_id="j1"), not_erased_since=ASKED)
    with pytest.raises(StudentErased):
        records.upsert_student("ann", "Ann", "c1", not_erased_since=ASKED)
    with pytest.raises(StudentErased):
        records.swap_gallery_pointer(0, GalleryPointer(1, "k1"), guard=("ann", ASKED))
    assert records.list_attendance(student_id="ann") == []
    assert records.attendance_jobs("ann") == set()
    assert records.get_student("ann") is None and records.list_students("c1") == []
    assert records.get_gallery_pointer() is None

    # Other students are not held back, and work asked for after the erasure goes ahead.
    assert records.mark_present(record(student_id="bob", job_id="j1"), not_erased_since=ASKED)
    later = erased + dt.timedelta(seconds=1)
    assert records.swap_gallery_pointer(0, GalleryPointer(1, "k1"), guard=("ann", later))
    records.upsert_student("ann", "Ann", "c1", not_erased_since=later)
    assert records.get_student("ann").class_ids == ["c1"]
    assert records.mark_present(record(student_id="ann", job_id="j2"), not_erased_since=later)


def test_every_job_that_saw_a_student_is_kept_until_their_attendance_goes(records):
    assert records.mark_present(record(job_id="j1")) is True
    assert records.mark_present(record(job_id="j2")) is False  # seen again, same day
    assert records.mark_present(record(day=D(2026, 1, 6), job_id="j3")) is True
    records.mark_present(record(student_id="bob", job_id="j4"))
    assert records.attendance_jobs("ann") == {"j1", "j2", "j3"}
    assert [r.job_id for r in records.list_attendance(student_id="ann")] == ["j1", "j3"]
    assert records.delete_attendance("ann") == 2
    assert records.attendance_jobs("ann") == set()
    assert records.attendance_jobs("bob") == {"j4"}


def test_rename_changes_only_an_existing_student(records):
    records.upsert_student("ann", "Ann", "c1")
    assert records.rename_student("ann", "Ann Lee") is True
    assert records.get_student("ann").name == "Ann Lee"
    assert records.get_student("ann").class_ids == ["c1"]
    assert records.rename_student("nobody", "X") is False
    assert records.get_student("nobody") is None
