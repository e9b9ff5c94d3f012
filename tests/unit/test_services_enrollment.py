"""Enrollment (attendance.services.enrollment) on real local stores with the fake detector and
embedder (tests/fakes.py): which photos it takes, what it commits, and what it leaves behind."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from attendance.domain.errors import NoUsablePhoto, StudentErased, StudentExists
from attendance.domain.keys import GALLERY_SEGMENTS, is_student_photo, student_photos_prefix
from attendance.domain.schemas import EnrollmentRequest, EnrollmentResult
from attendance.services.enrollment import INCONSISTENT, enroll
from attendance.stores.jobs import new_job_id
from tests.consent import give_consent
from tests.fakes import Face, ago, fake_pipeline, loading_no_tensorflow, photo, store_uploads

ANN, BEN = 1, 2


@pytest.fixture(autouse=True)
def _no_tensorflow():
    with loading_no_tensorflow():
        yield


@pytest.fixture
def pipe(tmp_path):
    return fake_pipeline(tmp_path)


def enroll_photos(
    pipe,
    student_id: str,
    photos: dict[str, bytes],
    *,
    job_id: str | None = None,
    mode: str = "create",
    name: str | None = "Ann Example",
    requested_at: dt.datetime | None = None,
) -> EnrollmentResult:
    job_id = job_id or new_job_id()
    req = EnrollmentRequest(
        job_id=job_id,
        student_id=student_id,
        mode=mode,
        name=name if mode == "create" else None,
        class_id="room-1",
        photos=store_uploads(pipe.blobs, job_id, photos),
        requested_by="tester",
        requested_at=requested_at,
    )
    give_consent(pipe.records, student_id)
    progress: list[tuple[int, int]] = []
    result = enroll(pipe, req, lambda done, total: progress.append((done, total)))
    assert progress == [(i, len(photos)) for i in range(1, len(photos) + 1)]
    return result


def reasons(result: EnrollmentResult) -> dict[str, str]:
    return {r.filename: r.reason for r in result.rejected}


def test_one_clear_face_per_photo_is_embedded_in_one_batch_and_committed(pipe):
    result = enroll_photos(
        pipe, "ann", {"a.png": photo(Face(ANN, shot=1)), "b.png": photo(Face(ANN, shot=2))}
    )
    assert (result.accepted_photos, result.rejected, result.model_version) == (2, [], 1)
    assert pipe.embedder.batches == [2]
    manifest = pipe.gallery_repo.current_manifest()
    assert manifest.embeddings_per_student() == {"ann": 2}
    assert manifest.embeddings_per_student(pipe.pipeline_id) == {"ann": 2}
    # The committed rows are the embedder's vectors of Ann's two photos.
    pipe.gallery.refresh()
    assert list(pipe.gallery.student_ids) == ["ann", "ann"]
    ann = pipe.embedder.person(ANN)
    assert np.all(pipe.gallery.embeddings @ ann > 0.98)
    student = pipe.records.get_student("ann")
    assert (student.name, student.class_ids) == ("Ann Example", ["room-1"])
    # The photos used are kept under the student, so that erasing them finds them.
    kept = pipe.blobs.list(student_photos_prefix("ann"))
    assert len(kept) == 2 and all(is_student_photo(key, "ann") for key in kept)
    [audit] = pipe.records.list_audit()
    assert (audit.actor, audit.action, audit.target) == ("tester", "enroll", "ann")
    assert audit.detail["photos"] == 2 and audit.detail["model_version"] == 1


def test_photos_without_one_good_face_are_refused_in_plain_words(pipe):
    result = enroll_photos(
        pipe,
        "ann",
        {
            "good.png": photo(Face(ANN, shot=1)),
            # A face too small to recognise in the background does not count.
            "with-background.png": photo(Face(ANN, shot=2), Face(9, width=20)),
            "empty.png": photo(),
            "two.png": photo(Face(ANN, shot=3), Face(BEN)),
            "tiny.png": photo(Face(ANN, width=20)),
            "small.png": photo(Face(ANN, width=40)),
            "turned.png": photo(Face(ANN, look="turned")),
            "soft.png": photo(Face(ANN, look="soft")),
            "unsure.png": photo(Face(ANN, look="unsure")),
            "broken.png": b"not an image at all",
        },
    )
    assert result.accepted_photos == 2
    assert reasons(result) == {
        "empty.png": "no face found",
        "two.png": "2 faces found; an enrollment photo must show one face",
        "tiny.png": "the face is too small to recognise: a photo in which the face is at "
        "least 32 pixels wide is needed",
        "small.png": "the face is too small for an enrollment photo: a photo in which the face "
        "is at least 48 pixels wide is needed",
        "turned.png": "the face is turned away: a photo facing the camera is needed",
        "soft.png": "the face is blurred: a sharper photo is needed",
        "unsure.png": "the face is not clear enough (turned away, blurred or covered)",
        "broken.png": "not a readable image",
    }
    assert pipe.gallery_repo.current_manifest().embeddings_per_student() == {"ann": 2}
    assert pipe.embedder.batches == [2]  # only the accepted faces were embedded


def test_nothing_usable_fails_and_leaves_nothing(pipe):
    with pytest.raises(NoUsablePhoto) as failed:
        enroll_photos(pipe, "ann", {"empty.png": photo(), "two.png": photo(Face(1), Face(2))})
    assert "none of the 2 photos could be used" in failed.value.message
    assert "empty.png: no face found" in failed.value.message
    assert pipe.gallery_repo.current_manifest() is None
    assert pipe.records.get_student("ann") is None
    assert pipe.blobs.list(student_photos_prefix("ann")) == []
    assert pipe.embedder.batches == []


def test_a_photo_of_someone_else_among_them_is_refused(pipe):
    result = enroll_photos(
        pipe,
        "ann",
        {
            "a.png": photo(Face(ANN, shot=1)),
            "b.png": photo(Face(ANN, shot=2)),
            "c.png": photo(Face(ANN, shot=3)),
            "ben.png": photo(Face(BEN)),
        },
    )
    assert result.accepted_photos == 3
    assert reasons(result) == {"ben.png": INCONSISTENT}
    pipe.gallery.refresh()
    assert np.all(pipe.gallery.embeddings @ pipe.embedder.person(ANN) > 0.98)
    assert len(pipe.blobs.list(student_photos_prefix("ann"))) == 3


def test_added_photos_must_look_like_the_enrolled_ones(pipe):
    enroll_photos(
        pipe, "ann", {"a.png": photo(Face(ANN, shot=1)), "b.png": photo(Face(ANN, shot=2))}
    )
    with pytest.raises(NoUsablePhoto, match="does not look like the other photos"):
        enroll_photos(pipe, "ann", {"ben.png": photo(Face(BEN))}, mode="add")
    added = enroll_photos(pipe, "ann", {"c.png": photo(Face(ANN, shot=3))}, mode="add")
    assert (added.accepted_photos, added.model_version) == (1, 2)
    assert pipe.gallery_repo.current_manifest().embeddings_per_student() == {"ann": 3}
    assert pipe.records.get_student("ann").name == "Ann Example"  # the stored name stays


def test_a_redelivered_enrollment_adds_nothing_twice(pipe):
    photos = {"a.png": photo(Face(ANN, shot=1))}
    first = enroll_photos(pipe, "ann", photos, job_id="job-1")
    again = enroll_photos(pipe, "ann", photos, job_id="job-1")
    assert first.model_version == again.model_version == 1
    assert pipe.gallery_repo.current_manifest().embeddings_per_student() == {"ann": 1}
    assert pipe.blobs.list(GALLERY_SEGMENTS) == ["gallery/segments/job-1.npz"]


def test_an_id_of_another_student_is_refused(pipe):
    enroll_photos(pipe, "ann", {"a.png": photo(Face(ANN))})
    with pytest.raises(StudentExists):
        enroll_photos(pipe, "ann", {"b.png": photo(Face(BEN))}, name="Ben Other")
    assert pipe.gallery_repo.current_manifest().embeddings_per_student() == {"ann": 1}


def test_an_enrollment_asked_for_before_an_erasure_leaves_nothing(pipe):
    pipe.records.record_erasure("ann", dt.datetime.now(dt.UTC))
    with pytest.raises(StudentErased):
        enroll_photos(pipe, "ann", {"a.png": photo(Face(ANN))}, requested_at=ago(minutes=1))
    assert pipe.gallery_repo.current_manifest() is None
    assert pipe.blobs.list(GALLERY_SEGMENTS) == []
    assert pipe.blobs.list(student_photos_prefix("ann")) == []
    assert pipe.records.get_student("ann") is None
    # One asked for after the erasure is a new enrollment, and allowed.
    assert enroll_photos(pipe, "ann", {"a.png": photo(Face(ANN))}).accepted_photos == 1


def test_the_worker_task_reports_the_outcome_on_the_job(pipe, monkeypatch):
    from attendance.worker import tasks

    monkeypatch.setattr(tasks, "get_jobs", lambda: (pipe.jobs, pipe.settings))
    monkeypatch.setattr(tasks, "get_pipeline", lambda: pipe)
    for job_id, photos in (("good", {"a.png": photo(Face(ANN))}), ("bad", {"e.png": photo()})):
        uploads = store_uploads(pipe.blobs, job_id, photos)
        pipe.jobs.create(job_id, "enrollment", len(uploads), class_id="room-1")
        give_consent(pipe.records, f"s-{job_id}")
        payload = {
            "job_id": job_id,
            "student_id": f"s-{job_id}",
            "name": "Someone",
            "class_id": "room-1",
            "photos": [u.model_dump() for u in uploads],
        }
        tasks.enroll_task.apply(kwargs={"payload": payload}).get()
    good, bad = pipe.jobs.get("good"), pipe.jobs.get("bad")
    assert good.state == "succeeded" and good.result["accepted_photos"] == 1
    assert (good.progress.done, good.progress.total) == (1, 1)
    assert bad.state == "failed" and bad.error.code == "no_usable_photo"
    assert pipe.records.get_student("s-good") is not None
    assert pipe.records.get_student("s-bad") is None
