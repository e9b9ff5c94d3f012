"""The RecordsStore contract, on SQLite and on DynamoDB (moto's server over HTTP)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from attendance.domain.errors import MarkChanged
from attendance.domain.schemas import AttendanceRecord, Box
from attendance.stores.records import Expected, GalleryPointer

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


def test_the_write_probe_writes_and_leaves_no_record_behind(records):
    """readyz's probe_write: a real write, repeatable, that no listing or read ever shows."""
    records.upsert_student("ann", "Ann", "c1")
    assert records.mark_present(record(job_id="j1"))
    assert records.swap_gallery_pointer(0, GalleryPointer(1, "k1"))

    def everything():
        return (
            records.list_students(),
            records.list_attendance(),
            records.list_audit(),
            records.get_gallery_pointer(),
            records.attendance_jobs("ann"),
            records.list_register_locks("c1", D(2026, 1, 1), D(2026, 12, 31)),
        )

    before = everything()
    for _ in range(3):
        records.probe_write()
    assert everything() == before
    # The pointer still moves by compare-and-set from where it was.
    assert records.swap_gallery_pointer(1, GalleryPointer(2, "k2"))
    assert records.get_gallery_pointer() == GalleryPointer(2, "k2")


def test_sqlite_the_write_probe_overwrites_one_row(tmp_path):
    import sqlite3

    from attendance.stores.records import SqliteRecords

    store = SqliteRecords(tmp_path / "db.sqlite")
    for _ in range(3):
        store.probe_write()
    db = sqlite3.connect(tmp_path / "db.sqlite")
    assert db.execute("SELECT count(*) FROM readiness_probe").fetchone() == (1,)
    db.close()


def test_sqlite_a_lock_held_past_the_busy_timeout_is_store_busy_and_writes_nothing(tmp_path):
    import sqlite3
    import time

    from attendance.domain.errors import StoreBusy
    from attendance.stores.records import SqliteRecords

    store = SqliteRecords(tmp_path / "db.sqlite", busy_timeout=0.3, ping_timeout=0.2)
    store.upsert_student("ann", "Ann", "c1")
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusy) as busy:
            store.mark_present(record())
        assert 0.3 <= time.monotonic() - started < 5
        assert busy.value.status == 503 and busy.value.code == "store_unavailable"
        assert "locked by another writer" in busy.value.message
        with pytest.raises(StoreBusy):
            store.probe_write()
        store.ping()  # reads go on (WAL)
        assert store.get_student("ann").name == "Ann"
        # A process starting meanwhile opens it (its schema needs no write).
        started = time.monotonic()
        assert SqliteRecords(tmp_path / "db.sqlite", busy_timeout=5).get_student("ann")
        assert time.monotonic() - started < 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.list_attendance() == []
    assert store.mark_present(record())
    store.probe_write()


def test_dynamodb_the_write_probe_is_one_item_and_a_missing_table_says_so(emulators):
    import boto3

    from attendance.domain.errors import StoreUnavailable
    from tests.contract.conftest import dynamo_store
    from tests.emulators import REGION

    store = dynamo_store(emulators)
    store.ping()
    store.probe_write()
    store.probe_write()
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=emulators.dynamodb.endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    items = client.scan(TableName=store.gallery_table)["Items"]
    assert [item["scope"]["S"] for item in items] == ["#readyz"]

    missing = dynamo_store(emulators, create_tables=False)
    with pytest.raises(StoreUnavailable) as refused:
        missing.probe_write()
    assert missing.gallery_table in refused.value.message
    assert "does not exist" in refused.value.message


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


# --- registers: periods, manual marks, sign-off -------------------------------------------------

TEACHER_AT = dt.datetime(2026, 1, 5, 10, 30, 15, 250000, tzinfo=dt.UTC)


def manual(status="late", period="", **extra) -> AttendanceRecord:
    extra.setdefault("marked_by", "teacher-1")
    extra.setdefault("marked_at", TEACHER_AT)
    extra.setdefault("distance", None)
    return record(status=status, source="manual", period=period, **extra)


def test_a_period_keeps_its_register_apart_from_the_day_and_other_periods(records):
    assert records.mark_present(record(job_id="j0")) is True
    assert records.mark_present(record(period="1", distance=0.3, job_id="j1")) is True
    assert records.mark_present(record(period="P3 maths", distance=0.4, job_id="j2")) is True
    # Each register holds its own first mark.
    assert records.mark_present(record(period="1", distance=0.1)) is False
    assert records.get_mark("c1", D(2026, 1, 5), "", "ann").distance == 0.2
    assert records.get_mark("c1", D(2026, 1, 5), "1", "ann").distance == 0.3
    assert records.get_mark("c1", D(2026, 1, 5), "P3 maths", "ann").job_id == "j2"
    assert records.get_mark("c1", D(2026, 1, 5), "2", "ann") is None
    assert records.get_mark("c1", D(2026, 1, 6), "", "ann") is None
    every = records.list_attendance(class_id="c1")
    assert sorted(r.period for r in every) == ["", "1", "P3 maths"]
    assert all(r.status == "present" and r.source == "face" for r in every)
    assert [r.distance for r in records.list_attendance(student_id="ann", period="1")] == [0.3]
    assert records.attendance_jobs("ann") == {"j0", "j1", "j2"}
    assert records.delete_attendance("ann") == 3
    assert records.list_attendance() == []


def test_list_attendance_filters_by_period_and_none_means_every_period(records):
    records.mark_present(record(student_id="ann"))
    records.mark_present(record(student_id="bob", period="1"))
    records.mark_present(record(student_id="cid", period="1", day=D(2026, 1, 6)))
    records.set_mark(manual(student_id="dee", period="2", status="absent"))
    records.mark_present(record(class_id="c2", student_id="eve", period="1"))

    def ids(**filters):
        return [(r.period, r.student_id) for r in records.list_attendance(**filters)]

    assert ids(class_id="c1", period="1") == [("1", "bob"), ("1", "cid")]
    assert ids(class_id="c1", period="") == [("", "ann")]
    assert ids(class_id="c1", period="2") == [("2", "dee")]  # an absent mark is a mark too
    assert ids(class_id="c1", period="9") == []
    assert ids(class_id="c1", period=None) == [
        ("", "ann"),
        ("1", "bob"),
        ("2", "dee"),
        ("1", "cid"),
    ]
    assert ids(period="1") == [("1", "bob"), ("1", "eve"), ("1", "cid")]
    assert ids(period="1", date_to=D(2026, 1, 5)) == [("1", "bob"), ("1", "eve")]
    assert ids(student_id="cid", period="1") == [("1", "cid")]
    assert ids(student_id="cid", period="") == []
    assert len(records.list_attendance()) == 5


def test_a_face_never_overrides_a_teachers_mark(records):
    mark = manual(status="absent", note="at the dentist")
    assert records.set_mark(mark) is None
    assert records.mark_present(record(job_id="j1")) is False
    assert records.get_mark("c1", D(2026, 1, 5), "", "ann") == mark
    # The photo still saw her: erasure must find it.
    assert records.attendance_jobs("ann") == {"j1"}


def test_set_mark_overwrites_a_face_or_a_teachers_mark_and_returns_what_it_replaced(records):
    face = record(job_id="j1", distance=0.25)
    assert records.mark_present(face) is True
    first = manual(status="late", note="bus")
    assert records.set_mark(first) == face
    assert records.get_mark("c1", D(2026, 1, 5), "", "ann") == first
    second = manual(status="excused", note=None, marked_by="teacher-2")
    assert records.set_mark(second) == first
    assert records.list_attendance(class_id="c1") == [second]
    # The face's job stays among those that saw her after her mark went manual.
    assert records.attendance_jobs("ann") == {"j1"}
    assert records.mark_present(record(job_id="j2")) is False
    assert records.attendance_jobs("ann") == {"j1", "j2"}
    assert records.get_mark("c1", D(2026, 1, 5), "", "ann") == second
    # Another period's register is untouched by any of it.
    assert records.set_mark(manual(period="1", status="present")) is None
    assert records.get_mark("c1", D(2026, 1, 5), "", "ann") == second


def test_every_status_round_trips_with_its_note_author_and_time(records):
    for i, status in enumerate(("present", "late", "excused", "absent")):
        mark = manual(
            student_id=f"s{i}",
            status=status,
            note=f"note {status} ü" if i % 2 else None,
            marked_by=f"teacher-{i}",
            marked_at=TEACHER_AT + dt.timedelta(minutes=i, microseconds=i),
            job_id="j" * 32 if i == 3 else None,
            distance=0.5 if i == 3 else None,
        )
        assert records.set_mark(mark) is None
        assert records.get_mark("c1", D(2026, 1, 5), "", f"s{i}") == mark
    got = records.list_attendance(class_id="c1", date_from=D(2026, 1, 5), date_to=D(2026, 1, 5))
    assert [(r.status, r.source, r.marked_by) for r in got] == [
        ("present", "manual", "teacher-0"),
        ("late", "manual", "teacher-1"),
        ("excused", "manual", "teacher-2"),
        ("absent", "manual", "teacher-3"),
    ]
    assert got[1].note == "note late ü" and got[0].note is None and got[0].distance is None
    assert got[3].distance == 0.5 and got[3].marked_at == TEACHER_AT + dt.timedelta(
        minutes=3, microseconds=3
    )


def test_a_finalized_register_takes_only_corrections(records):

    from attendance.domain.errors import RegisterFinalized

    day, at = D(2026, 1, 5), dt.datetime(2026, 1, 5, 16, tzinfo=dt.UTC)
    assert records.register_lock("c1", day, "") is None
    assert records.mark_present(record(student_id="bob")) is True
    lock = records.finalize_register("c1", day, "", "teacher-1", at)
    assert (lock.class_id, lock.date, lock.period) == ("c1", day, "")
    assert (lock.finalized_by, lock.finalized_at) == ("teacher-1", at)
    assert records.register_lock("c1", day, "") == lock

    # A late photo marks nobody in it, though the job is still noted for erasure.
    assert records.mark_present(record(job_id="j-late")) is False
    assert records.get_mark("c1", day, "", "ann") is None
    assert records.attendance_jobs("ann") == {"j-late"}
    with pytest.raises(RegisterFinalized):
        records.set_mark(manual(student_id="bob", status="absent"))
    with pytest.raises(RegisterFinalized):
        records.set_mark(manual(status="late"))
    assert [r.student_id for r in records.list_attendance(class_id="c1")] == ["bob"]
    assert records.get_mark("c1", day, "", "bob").source == "face"

    fix = manual(student_id="bob", status="absent", marked_by="admin")
    assert records.set_mark(fix, correction=True).source == "face"
    assert records.get_mark("c1", day, "", "bob") == fix
    assert records.set_mark(manual(status="late"), correction=True) is None
    assert records.get_mark("c1", day, "", "ann").status == "late"
    # Only that register is closed: another period, date or class takes marks as before.
    assert records.register_lock("c1", day, "1") is None
    assert records.mark_present(record(period="1")) is True
    assert records.mark_present(record(day=D(2026, 1, 6))) is True
    assert records.mark_present(record(class_id="c2")) is True
    assert records.set_mark(manual(student_id="cid", period="1")) is None


def test_finalizing_twice_keeps_the_first_lock(records):
    day = D(2026, 1, 5)
    first_at = dt.datetime(2026, 1, 5, 16, tzinfo=dt.UTC)
    first = records.finalize_register("c1", day, "P3 maths", "teacher-1", first_at)
    again = records.finalize_register(
        "c1", day, "P3 maths", "admin", first_at + dt.timedelta(hours=1)
    )
    assert again == first and again.finalized_by == "teacher-1"
    assert records.register_lock("c1", day, "P3 maths") == first
    assert records.register_lock("c1", day, "") is None
    assert records.register_lock("c1", day, "P3") is None
    with ThreadPoolExecutor(6) as pool:
        locks = list(
            pool.map(
                lambda i: records.finalize_register("c2", day, "", f"t{i}", first_at), range(6)
            )
        )
    assert len(set(lock.finalized_by for lock in locks)) == 1
    assert records.register_lock("c2", day, "") == locks[0]


def test_a_class_s_sign_offs_are_listed_by_date_range(records):
    at = dt.datetime(2026, 1, 5, 16, tzinfo=dt.UTC)
    for day, period in [(D(2026, 1, 5), ""), (D(2026, 1, 5), "P2"), (D(2026, 1, 7), "")]:
        records.finalize_register("c1", day, period, "teacher-1", at)
    records.finalize_register("c10", D(2026, 1, 6), "", "teacher-2", at)
    locks = records.list_register_locks("c1", D(2026, 1, 5), D(2026, 1, 7))
    assert [(lock.date, lock.period) for lock in locks] == [
        (D(2026, 1, 5), ""),
        (D(2026, 1, 5), "P2"),
        (D(2026, 1, 7), ""),
    ]
    assert all(lock.class_id == "c1" and lock.finalized_by == "teacher-1" for lock in locks)
    assert records.list_register_locks("c1", D(2026, 1, 6), D(2026, 1, 6)) == []
    assert [lk.date for lk in records.list_register_locks("c1", D(2026, 1, 6), D(2026, 2, 1))] == [
        D(2026, 1, 7)
    ]
    assert records.list_register_locks("c1", D(2026, 1, 7), D(2026, 1, 5)) == []
    # No class's sign-offs are another's, and marks are not sign-offs.
    records.mark_present(record(class_id="c1", day=D(2026, 1, 6)))
    assert records.list_register_locks("c1", D(2026, 1, 6), D(2026, 1, 6)) == []
    assert [
        lk.class_id for lk in records.list_register_locks("c10", D(2026, 1, 1), D(2026, 2, 1))
    ] == ["c10"]


def test_a_mark_written_over_an_expected_one_is_refused_once_another_came_between(records):
    day = D(2026, 1, 5)
    records.mark_present(record(job_id="j1"))
    seen = records.get_mark("c1", day, "", "ann")
    assert seen is not None
    # Someone else's mark lands between the read and the write decided from it.
    records.set_mark(manual(status="late", note="came in at 9:10"))
    with pytest.raises(MarkChanged):
        records.set_mark(manual(status="absent"), expected=Expected(seen))
    now = records.get_mark("c1", day, "", "ann")
    assert now is not None and (now.status, now.note) == ("late", "came in at 9:10")
    assert records.set_mark(manual(status="absent"), expected=Expected(now)) == now
    assert records.get_mark("c1", day, "", "ann").status == "absent"
    # Expecting no mark: refused where there is one, written where there is none.
    with pytest.raises(MarkChanged):
        records.set_mark(manual(status="excused"), expected=Expected(None))
    assert records.set_mark(manual(student_id="zed"), expected=Expected(None)) is None
    assert records.get_mark("c1", day, "", "zed").status == "late"


def test_concurrent_manual_and_face_marks_of_one_key_leave_one_row(records):
    def write(i: int):
        if i % 2:
            return records.set_mark(manual(status="late", note=f"n{i}"))
        return records.mark_present(record(distance=i / 100, job_id=f"j{i}"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    rows = records.list_attendance()
    assert len(rows) == 1
    # Every manual mark ran, and the last one is there: no face got in after it.
    assert rows[0].source == "manual" and rows[0].status == "late"
    assert records.attendance_jobs("ann") == {"j0", "j2", "j4", "j6"}


def evidence(**extra) -> dict:
    """A face's evidence as a recognition or a teacher's assignment writes it."""
    return {
        "job_id": "j" * 32,
        "photo": 2,
        "face": 0,
        "box": Box(x=1200, y=0, w=96, h=130),
        "captured_at": dt.datetime(
            2026, 1, 5, 8, 59, 58, tzinfo=dt.timezone(dt.timedelta(hours=2))
        ),
        **extra,
    }


def test_a_marks_evidence_round_trips_and_a_hand_mark_without_it_clears_it(records):
    face = record(**evidence())
    assert records.mark_present(face) is True
    got = records.get_mark("c1", D(2026, 1, 5), "", "ann")
    assert got == face
    assert got.captured_at.utcoffset() == dt.timedelta(hours=2)
    assert records.list_attendance(class_id="c1") == [face]
    # A camera's clock without an offset stays as the camera said.
    naive = record(student_id="bob", **evidence(captured_at=dt.datetime(2026, 1, 5, 9, 1)))
    assert records.mark_present(naive) is True
    assert records.get_mark("c1", D(2026, 1, 5), "", "bob").captured_at.tzinfo is None

    # A teacher's mark from another face replaces the evidence; one by hand drops it.
    assigned = manual(status="present", **evidence(photo=0, face=3, distance=None))
    assert records.set_mark(assigned) == face
    assert records.get_mark("c1", D(2026, 1, 5), "", "ann") == assigned
    by_hand = manual(status="absent")
    assert records.set_mark(by_hand) == assigned
    got = records.get_mark("c1", D(2026, 1, 5), "", "ann")
    assert got == by_hand
    assert (got.photo, got.face, got.box, got.captured_at) == (None, None, None, None)
    # Marks from before evidence (none of it) read back with none.
    assert records.mark_present(record(student_id="cid")) is True
    old = records.get_mark("c1", D(2026, 1, 5), "", "cid")
    assert (old.photo, old.face, old.box, old.captured_at) == (None, None, None, None)


# --- data written by earlier versions -----------------------------------------------------------


def test_an_old_sqlite_database_is_migrated_on_open(tmp_path):
    import sqlite3

    from attendance.stores.records import SqliteRecords

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE students (student_id TEXT PRIMARY KEY, name TEXT NOT NULL,
                               created_at TEXT NOT NULL);
        CREATE TABLE attendance (
            class_id TEXT NOT NULL,
            date TEXT NOT NULL,
            student_id TEXT NOT NULL,
            name TEXT NOT NULL,
            first_seen_at TEXT NOT NULL,
            distance REAL NOT NULL,
            job_id TEXT,
            PRIMARY KEY (class_id, date, student_id)
        );
        CREATE INDEX attendance_by_student ON attendance (student_id, date);
        CREATE TABLE attendance_jobs (student_id TEXT NOT NULL, job_id TEXT NOT NULL,
                                      PRIMARY KEY (student_id, job_id));
        """
    )
    old.executemany(
        "INSERT INTO attendance VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            ("c1", "2026-01-05", "ann", "Ann", SEEN.isoformat(), 0.2, "j1"),
            ("c1", "2026-01-05", "bob", "Bob", SEEN.isoformat(), 0.3, None),
        ],
    )
    old.commit()
    old.close()

    want = [
        record(job_id="j1"),
        record(student_id="bob", distance=0.3),
    ]
    store = SqliteRecords(path)
    assert store.list_attendance() == want
    assert store.attendance_jobs("ann") == {"j1"}
    assert SqliteRecords(path).list_attendance() == want  # a second open changes nothing
    # The migrated rows are the whole day's register, and take periods beside them.
    assert store.mark_present(record(job_id="j2")) is False
    assert store.mark_present(record(period="1")) is True
    assert store.set_mark(manual(student_id="bob")) == want[1]

    db = sqlite3.connect(path)
    columns = {row[1]: row for row in db.execute("PRAGMA table_info(attendance)")}
    assert [name for name, row in columns.items() if row[5]] == [
        "class_id",
        "date",
        "period",
        "student_id",
    ]
    assert columns["distance"][3] == 0  # NOT NULL no more
    indexes = {row[1] for row in db.execute("PRAGMA index_list(attendance)")}
    assert "attendance_by_student" in indexes
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "register_locks" in tables and "attendance_migrated" not in tables
    db.close()


def test_a_sqlite_database_from_before_evidence_gains_its_columns_on_open(tmp_path):
    import sqlite3

    from attendance.stores.records import SqliteRecords

    path = tmp_path / "periods.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE attendance (
            class_id TEXT NOT NULL, date TEXT NOT NULL, period TEXT NOT NULL DEFAULT '',
            student_id TEXT NOT NULL, name TEXT NOT NULL, first_seen_at TEXT NOT NULL,
            distance REAL, job_id TEXT, status TEXT NOT NULL DEFAULT 'present',
            source TEXT NOT NULL DEFAULT 'face', marked_by TEXT, marked_at TEXT, note TEXT,
            PRIMARY KEY (class_id, date, period, student_id)
        );
        """
    )
    old.execute(
        "INSERT INTO attendance (class_id, date, period, student_id, name, first_seen_at, "
        "distance, job_id) VALUES ('c1', '2026-01-05', '', 'ann', 'Ann', ?, 0.2, 'j1')",
        (SEEN.isoformat(),),
    )
    old.commit()
    old.close()

    store = SqliteRecords(path)
    assert store.list_attendance() == [record(job_id="j1")]
    assert SqliteRecords(path).list_attendance() == [record(job_id="j1")]
    with_evidence = record(student_id="bob", **evidence())
    assert store.mark_present(with_evidence) is True
    assert store.get_mark("c1", D(2026, 1, 5), "", "bob") == with_evidence
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(attendance)")]
    db.close()
    assert columns[-4:] == ["photo", "face", "box", "captured_at"]


def test_dynamodb_items_written_before_periods_are_the_whole_days_register(emulators):
    from tests.contract.conftest import dynamo_store

    store = dynamo_store(emulators)
    store.ping()  # creates the tables
    client = store._client()
    # Exactly what the code before periods and manual marks wrote.
    client.put_item(
        TableName=store.attendance_table,
        Item={
            "class_id": {"S": "c1"},
            "date_student": {"S": "2026-01-05#ann"},
            "date": {"S": "2026-01-05"},
            "student_id": {"S": "ann"},
            "name": {"S": "Ann"},
            "first_seen_at": {"S": SEEN.isoformat()},
            "distance": {"N": "0.2"},
            "job_id": {"S": "j1"},
            "job_ids": {"SS": ["j0", "j1"]},
        },
    )
    old = record(job_id="j1")
    assert store.get_mark("c1", D(2026, 1, 5), "", "ann") == old
    assert store.list_attendance(class_id="c1", period="") == [old]
    assert store.list_attendance(student_id="ann") == [old]
    assert store.mark_present(record(job_id="j2")) is False
    assert store.attendance_jobs("ann") == {"j0", "j1", "j2"}

    # New whole-day marks take the same key; a period's is another one.
    assert store.mark_present(record(student_id="bob")) is True
    assert store.mark_present(record(student_id="bob", period="P3 maths")) is True

    def raw(sort_key: str) -> dict | None:
        return client.get_item(
            TableName=store.attendance_table,
            Key={"class_id": {"S": "c1"}, "date_student": {"S": sort_key}},
            ConsistentRead=True,
        ).get("Item")

    assert raw("2026-01-05#bob")["student_id"] == {"S": "bob"}
    assert raw("2026-01-05#bob")["status"] == {"S": "present"}
    assert raw("2026-01-05#bob#P3 maths")["period"] == {"S": "P3 maths"}

    # A teacher's mark over the old item keeps every job that saw her.
    assert store.set_mark(manual()) == old
    assert set(raw("2026-01-05#ann")["job_ids"]["SS"]) == {"j0", "j1", "j2"}
    assert "distance" not in raw("2026-01-05#ann")
    assert store.get_mark("c1", D(2026, 1, 5), "", "ann") == manual()
    assert store.delete_attendance("ann") == 1
    assert store.attendance_jobs("ann") == set()


# --- consent ------------------------------------------------------------------------------------


def consent(student_id="ann", **extra):
    from attendance.domain.schemas import Consent

    return Consent(
        student_id=student_id,
        given_by=extra.pop("given_by", "A. Parent"),
        relationship=extra.pop("relationship", "parent"),
        given_on=extra.pop("given_on", D(2026, 9, 1)),
        minor=extra.pop("minor", True),
        recorded_by=extra.pop("recorded_by", "admin"),
        recorded_at=extra.pop("recorded_at", SEEN),
        **extra,
    )


def test_consent_is_recorded_replaced_listed_and_deleted(records):
    assert records.get_consent("ann") is None and records.consents(["ann"]) == {}
    records.put_consent(consent())
    assert records.get_consent("ann") == consent()
    adult = consent(relationship="self", minor=False, given_by="Ann Herself")
    records.put_consent(adult)  # replaces the first
    assert records.get_consent("ann") == adult
    # More than one BatchGetItem (100 keys) on DynamoDB, unknown ids left out.
    ids = [f"s{i:03d}" for i in range(105)]
    for sid in ids:
        records.put_consent(consent(sid))
    found = records.consents([*ids, "ann", "nobody", "ann"])
    assert set(found) == {*ids, "ann"} and found["s104"] == consent("s104")
    # Consent is none of a student's records: rosters, attendance and scans never show it.
    assert records.list_students() == [] and records.list_attendance() == []
    assert records.attendance_jobs("ann") == set()
    assert records.delete_consent("ann") is True and records.delete_consent("ann") is False
    assert records.get_consent("ann") is None


def test_a_withdrawal_keeps_the_record_and_the_first_withdrawal_stays(records):
    at = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
    assert records.withdraw_consent("ann", "admin", at) is None  # nothing to withdraw
    assert records.get_consent("ann") is None
    records.put_consent(consent())
    withdrawn = records.withdraw_consent("ann", "admin", at)
    assert withdrawn == consent(withdrawn_at=at, withdrawn_by="admin")
    assert not withdrawn.active
    again = records.withdraw_consent("ann", "other", at + dt.timedelta(days=1))
    assert again == withdrawn and records.get_consent("ann") == withdrawn
    assert records.consents(["ann"]) == {"ann": withdrawn}
    # Given again: a new record, active.
    records.put_consent(consent(recorded_at=at + dt.timedelta(days=2)))
    assert records.get_consent("ann").active


def test_deleting_a_students_attendance_keeps_their_consent(records):
    records.upsert_student("ann", "Ann", "c1")
    records.mark_present(record(job_id="j1"))
    records.put_consent(consent())
    assert records.delete_attendance("ann") == 1
    assert records.delete_student("ann") is True
    assert records.get_consent("ann") == consent()


def test_an_existing_sqlite_database_gains_the_consent_table_on_open(tmp_path):
    import sqlite3

    from attendance.stores.records import SqliteRecords

    path = tmp_path / "before-consent.sqlite"
    SqliteRecords(path)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE consents")
    db.commit()
    db.close()
    store = SqliteRecords(path)
    store.put_consent(consent())
    assert store.get_consent("ann") == consent()


def account(username: str = "ms-smith", **extra):
    from attendance.domain.accounts import Account

    return Account(
        username=username,
        role=extra.pop("role", "teacher"),
        classes=extra.pop("classes", ["room-1"]),
        password_hash=extra.pop("password_hash", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"),
        created_at=extra.pop("created_at", SEEN),
        updated_at=extra.pop("updated_at", SEEN),
        **extra,
    )


def test_accounts_are_created_once_replaced_and_listed_by_username(records):
    assert records.get_account("ms-smith") is None and records.list_accounts() == []
    assert records.create_account(account()) is True
    assert records.create_account(account(role="admin", classes=None)) is False  # taken
    assert records.get_account("ms-smith") == account()
    disabled = account(disabled=True, updated_at=SEEN + dt.timedelta(hours=1))
    records.put_account(disabled)
    assert records.get_account("ms-smith") == disabled
    records.put_account(account("nobody"))  # replaces only an account that exists
    assert records.get_account("nobody") is None
    assert records.create_account(account("a.admin", role="admin", classes=None))
    assert [a.username for a in records.list_accounts()] == ["a.admin", "ms-smith"]
    # Accounts are none of the school's records: rosters, registers and scans never show them.
    assert records.list_students() == [] and records.list_attendance() == []
