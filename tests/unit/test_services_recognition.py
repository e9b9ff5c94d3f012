"""Recognition (attendance.services.recognition) on real local stores with the fake detector and
embedder (tests/fakes.py): who is marked present, and what every other face is."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from attendance.domain.keys import annotated_key
from attendance.domain.schemas import EnrollmentRequest, RecognitionRequest, RecognitionResult
from attendance.face.detect import TOO_SMALL, TURNED
from attendance.services.enrollment import enroll
from attendance.services.recognition import recognise
from tests.consent import give_consent
from tests.fakes import (
    Face,
    FakeEmbedder,
    ago,
    fake_pipeline,
    loading_no_tensorflow,
    photo,
    store_uploads,
)

ANN, BEN, CY, STRANGER, LOOKALIKE = 1, 2, 3, 9, 7
DAY = dt.date(2026, 11, 2)
TIMINGS = {
    "gallery",
    "decode",
    "decode_wait",
    "detect",
    "embed",
    "faces",
    "match",
    "annotate",
    "store",
    "annotate_store_wall",
    "attendance",
    "total",
}


@pytest.fixture(autouse=True)
def _no_tensorflow():
    with loading_no_tensorflow():
        yield


@pytest.fixture
def pipe(tmp_path):
    """Ann and Ben in room-1, Cy in room-2; LOOKALIKE resembles Ann, but not enough."""
    pipe = fake_pipeline(tmp_path, embedder=FakeEmbedder(lookalikes={LOOKALIKE: (ANN, 0.5)}))
    for sid, person, class_id in (
        ("ann", ANN, "room-1"),
        ("ben", BEN, "room-1"),
        ("cy", CY, "room-2"),
    ):
        job_id = f"enroll-{sid}"
        photos = {f"{i}.png": photo(Face(person, shot=i)) for i in (1, 2)}
        req = EnrollmentRequest(
            job_id=job_id,
            student_id=sid,
            name=sid.title(),
            class_id=class_id,
            photos=store_uploads(pipe.blobs, job_id, photos),
        )
        give_consent(pipe.records, sid)
        assert enroll(pipe, req, lambda *_: None).accepted_photos == 2
    pipe.embedder.batches.clear()
    return pipe


def recognise_photos(
    pipe, photos: dict[str, bytes], *, job_id="class-1", class_id="room-1", requested_at=None
) -> RecognitionResult:
    req = RecognitionRequest(
        job_id=job_id,
        class_id=class_id,
        date=DAY,
        photos=store_uploads(pipe.blobs, job_id, photos),
        requested_at=requested_at,
    )
    progress: list[tuple[int, int]] = []
    result = recognise(pipe, req, lambda done, total: progress.append((done, total)))
    assert progress == [(i, len(photos)) for i in range(1, len(photos) + 1)]
    return result


def outcomes(result: RecognitionResult) -> list[list[tuple]]:
    return [[(f.outcome, f.student_id, f.reason) for f in p.faces] for p in result.photos]


def present_in_records(pipe, class_id="room-1") -> list[str]:
    return sorted(r.student_id for r in pipe.records.list_attendance(class_id=class_id))


def test_present_unknown_and_unidentifiable_faces(pipe):
    result = recognise_photos(
        pipe,
        {
            "class.png": photo(
                Face(ANN, shot=5),
                Face(STRANGER),
                Face(BEN, look="profile"),
                Face(CY, width=20),
            )
        },
    )
    assert result.present == ["ann"]
    assert outcomes(result) == [
        [
            ("recognised", "ann", None),
            ("unknown", None, None),
            ("unidentifiable", None, TURNED),
            ("unidentifiable", None, TOO_SMALL),
        ]
    ]
    assert (result.unknown_faces, result.unidentifiable_faces) == (1, 2)
    [evidence] = result.evidence
    assert (evidence.student_id, evidence.photo, evidence.face) == ("ann", 0, 0)
    assert evidence.distance == result.photos[0].faces[0].distance < 0.05
    assert result.model_version == 3
    # Only the two identifiable faces went to the embedder, in one batch.
    assert pipe.embedder.batches == [2]
    # The stored result names students by id only.
    assert all(face.name is None for face in result.photos[0].faces)
    [record] = pipe.records.list_attendance(class_id="room-1")
    assert (record.student_id, record.name, record.date, record.job_id) == (
        "ann",
        "Ann",
        DAY,
        "class-1",
    )
    assert record.distance == pytest.approx(evidence.distance, abs=1e-4)
    key = result.photos[0].annotated_key
    assert key == annotated_key("class-1", 0)
    with Image.open(io.BytesIO(pipe.blobs.get(key))) as drawn:
        assert drawn.format == "JPEG"
    assert set(result.timings) == TIMINGS and result.timings["faces"] == 2.0


def test_a_stranger_is_never_forced_onto_the_nearest_student(pipe):
    threshold = pipe.settings.match_threshold
    result = recognise_photos(
        pipe, {"a.png": photo(Face(LOOKALIKE)), "b.png": photo(Face(CY, shot=5))}
    )
    assert result.present == [] and present_in_records(pipe) == []
    assert outcomes(result) == [[("unknown", None, None)], [("unknown", None, None)]]
    # The look-alike's nearest student is Ann, but beyond the threshold: unknown.
    nearest = result.photos[0].faces[0].distance
    assert threshold < nearest < 0.6
    # Cy is enrolled and matches, but is not on this class's roster.
    other = recognise_photos(
        pipe, {"c.png": photo(Face(CY, shot=5))}, job_id="c2", class_id="room-2"
    )
    assert other.present == ["cy"]


def test_one_student_is_given_to_one_face_of_a_photo_only(pipe):
    result = recognise_photos(pipe, {"a.png": photo(Face(ANN, shot=5), Face(ANN, shot=6))})
    assert result.present == ["ann"]
    assert sorted(o for o, _, _ in outcomes(result)[0]) == ["recognised", "unknown"]
    assert result.unknown_faces == 1


def test_every_photo_of_a_job_counts_and_a_broken_one_does_not_sink_the_others(pipe):
    result = recognise_photos(
        pipe,
        {
            "a.png": photo(Face(ANN, shot=5)),
            "broken.png": b"\x89PNG but not really",
            "b.png": photo(Face(BEN, shot=5), Face(STRANGER)),
            "empty.png": photo(),
        },
    )
    assert result.present == ["ann", "ben"] == present_in_records(pipe)
    assert [p.error for p in result.photos] == [None, "not a readable image", None, None]
    assert [p.annotated_key is not None for p in result.photos] == [True, False, True, True]
    assert [e.photo for e in result.evidence] == [0, 2]
    assert pipe.embedder.batches == [3]  # one batch for the faces of every photo


def test_a_student_erased_while_the_job_ran_is_left_out(pipe):
    asked_at = ago(minutes=1)
    pipe.records.record_erasure("ann", dt.datetime.now(dt.UTC))
    result = recognise_photos(
        pipe, {"a.png": photo(Face(ANN, shot=5), Face(BEN, shot=5))}, requested_at=asked_at
    )
    assert result.present == ["ben"] == present_in_records(pipe)
    assert outcomes(result) == [[("unknown", None, None), ("recognised", "ben", None)]]
    assert result.unknown_faces == 1 and [e.student_id for e in result.evidence] == ["ben"]
    assert result.photos[0].faces[0].distance is None


def test_a_redelivered_job_marks_nobody_twice(pipe):
    photos = {"a.png": photo(Face(ANN, shot=5))}
    first = recognise_photos(pipe, photos)
    again = recognise_photos(pipe, photos)
    assert first.present == again.present == ["ann"]
    assert len(pipe.records.list_attendance(class_id="room-1")) == 1


def test_a_class_with_nobody_enrolled_sees_only_unknown_faces(pipe):
    result = recognise_photos(pipe, {"a.png": photo(Face(ANN, shot=5))}, class_id="room-9")
    assert result.present == [] and outcomes(result) == [[("unknown", None, None)]]
    assert result.photos[0].faces[0].distance is None  # no candidate at all


def test_each_mark_names_the_face_that_is_its_evidence_and_when_the_photo_was_taken(pipe):
    taken = dt.datetime(2026, 11, 2, 8, 55, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    uploads = store_uploads(
        pipe.blobs,
        "class-2",
        {
            "first.png": photo(Face(STRANGER), Face(ANN, shot=40)),
            "second.png": photo(Face(BEN, shot=7), Face(STRANGER, shot=3), Face(ANN, shot=1)),
        },
    )
    uploads[1] = uploads[1].model_copy(update={"captured_at": taken})
    req = RecognitionRequest(
        job_id="class-2", class_id="room-1", date=DAY, period="P2", photos=uploads
    )
    result = recognise(pipe, req, lambda *_: None)
    assert result.period == "P2"
    assert [p.captured_at for p in result.photos] == [None, taken]
    by_student = {e.student_id: e for e in result.evidence}
    marks = {r.student_id: r for r in pipe.records.list_attendance(class_id="room-1")}
    assert set(marks) == {"ann", "ben"}
    for sid, mark in marks.items():
        seen = by_student[sid]
        face = result.photos[seen.photo].faces[seen.face]
        assert (mark.job_id, mark.photo, mark.face) == ("class-2", seen.photo, seen.face)
        assert (mark.box, mark.distance, mark.period) == (face.box, face.distance, "P2")
        assert mark.captured_at == result.photos[seen.photo].captured_at
        # The evidence is the student's nearest face among all the job's photos.
        assert face.distance == min(
            f.distance for p in result.photos for f in p.faces if f.student_id == sid
        )
    assert (marks["ben"].photo, marks["ben"].face, marks["ben"].captured_at) == (1, 0, taken)
    assert marks["ann"].first_seen_at > taken
