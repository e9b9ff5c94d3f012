"""Erasure (attendance.services.erasure) on real local stores, with students enrolled and seen
through the real services and the fake detector and embedder (tests/fakes.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from attendance.domain.errors import NotFound, StudentErased
from attendance.domain.keys import (
    GALLERY_MANIFESTS,
    GALLERY_SEGMENTS,
    GALLERY_SNAPSHOTS,
    segment_key,
)
from attendance.domain.schemas import EnrollmentRequest, RecognitionRequest
from attendance.services.enrollment import enroll
from attendance.services.erasure import erase_student
from attendance.services.recognition import recognise
from attendance.stores.gallery import GalleryCache, encode_segment
from attendance.stores.jobs import new_job_id
from tests.consent import give_consent
from tests.fakes import (
    Face,
    ago,
    fake_pipeline,
    loading_no_tensorflow,
    photo,
    store_uploads,
    student_traces,
)

ANN, BEN = 1, 2
DAY = dt.date(2026, 11, 2)


@pytest.fixture(autouse=True)
def _no_tensorflow():
    with loading_no_tensorflow():
        yield


def enroll_student(pipe, sid: str, person: int, *, requested_at=None):
    job_id = new_job_id()  # hex: erasure finds an enrollment's uploads by it
    photos = {f"{sid}-{i}.png": photo(Face(person, shot=i)) for i in (1, 2)}
    req = EnrollmentRequest(
        job_id=job_id,
        student_id=sid,
        name=f"Name of {sid}",
        class_id="room-1",
        photos=store_uploads(pipe.blobs, job_id, photos),
        requested_at=requested_at,
    )
    give_consent(pipe.records, sid)
    return enroll(pipe, req, lambda *_: None)


def recognise_photo(pipe, job_id: str, *faces: Face):
    req = RecognitionRequest(
        job_id=job_id,
        class_id="room-1",
        date=DAY,
        photos=store_uploads(pipe.blobs, job_id, {"class.png": photo(*faces)}),
    )
    return recognise(pipe, req, lambda *_: None)


@pytest.fixture
def pipe(tmp_path):
    pipe = fake_pipeline(tmp_path)
    enroll_student(pipe, "ann-7c1", ANN)
    enroll_student(pipe, "ben-9d2", BEN)
    seen = recognise_photo(pipe, "class-1", Face(ANN, shot=5), Face(BEN, shot=5))
    assert seen.present == ["ann-7c1", "ben-9d2"]
    return pipe


def test_erasure_removes_the_student_from_the_gallery_the_records_and_the_photos(pipe, tmp_path):
    store = tmp_path / "store"
    assert student_traces(store, "ann-7c1")  # what the check below looks for is there
    summary = erase_student(pipe.blobs, pipe.records, "ann-7c1", attendance=True)
    assert summary == {
        "student_id": "ann-7c1",
        "embeddings_removed": 2,
        # 2 kept enrollment photos, their 2 uploads, the class photo and its annotated copy
        "photos_removed": 6,
        "attendance_removed": 1,
        "model_version": 3,
    }
    assert student_traces(store, "ann-7c1") == []
    manifest = pipe.gallery_repo.current_manifest()
    assert manifest.version == 3 and manifest.embeddings_per_student() == {"ben-9d2": 2}
    # No earlier version, which names her, is left to bring her back.
    assert len(pipe.blobs.list(GALLERY_MANIFESTS)) == 1
    assert len(pipe.blobs.list(GALLERY_SNAPSHOTS)) == 1
    assert pipe.records.get_student("ann-7c1") is None
    assert pipe.records.list_attendance(student_id="ann-7c1") == []
    assert [r.student_id for r in pipe.records.list_attendance()] == ["ben-9d2"]
    # A worker's cache follows: she is not recognised any more; Ben still is.
    again = recognise_photo(pipe, "class-2", Face(ANN, shot=6), Face(BEN, shot=6))
    assert again.present == ["ben-9d2"]
    assert [f.outcome for f in again.photos[0].faces] == ["unknown", "recognised"]


def test_erasure_without_attendance_keeps_the_attendance_records(pipe):
    summary = erase_student(pipe.blobs, pipe.records, "ann-7c1", attendance=False)
    assert (summary["embeddings_removed"], summary["attendance_removed"]) == (2, 0)
    assert summary["photos_removed"] == 4  # the enrollment photos and their uploads
    assert [r.student_id for r in pipe.records.list_attendance(student_id="ann-7c1")] == ["ann-7c1"]
    assert pipe.blobs.list("annotated/class-1/")  # the class photos stay


def test_a_segment_of_several_students_is_rewritten_without_the_erased_one(pipe):
    bulk = np.stack([pipe.embedder.person(p) for p in (ANN, BEN, BEN)])
    pipe.gallery_repo.commit(
        bulk,
        ["ann-7c1", "ben-9d2", "ben-9d2"],
        segment_id="bulk",
        pipeline=pipe.pipeline_id,
        model_name="Facenet",
        detector=pipe.settings.detector,
        metric="cosine",
        threshold=0.45,
    )
    summary = erase_student(pipe.blobs, pipe.records, "ann-7c1", attendance=True)
    assert summary["embeddings_removed"] == 3
    assert not pipe.blobs.exists(segment_key("bulk"))
    manifest = pipe.gallery_repo.current_manifest()
    assert manifest.embeddings_per_student() == {"ben-9d2": 4}
    fresh = GalleryCache(pipe.gallery_repo, pipe.pipeline_id)
    fresh.refresh()
    assert list(fresh.student_ids) == ["ben-9d2"] * 4
    assert np.allclose(fresh.embeddings[2:], bulk[1:], atol=1e-6)  # Ben's rows, unchanged


def test_a_segment_no_version_names_is_found_and_removed(pipe):
    # What an enrollment that failed after writing its segment leaves behind.
    orphan = segment_key("failed-job")
    pipe.blobs.put(orphan, encode_segment(np.ones((2, 128), np.float32), ["ann-7c1"] * 2))
    summary = erase_student(pipe.blobs, pipe.records, "ann-7c1", attendance=False)
    assert summary["embeddings_removed"] == 4
    assert not pipe.blobs.exists(orphan)
    assert len(pipe.blobs.list(GALLERY_SEGMENTS)) == 1  # Ben's


def test_erasing_again_removes_nothing_and_an_unknown_student_is_not_found(pipe):
    erase_student(pipe.blobs, pipe.records, "ann-7c1", attendance=True)
    again = erase_student(pipe.blobs, pipe.records, "ann-7c1", attendance=True)
    assert (again["embeddings_removed"], again["photos_removed"]) == (0, 0)
    assert again["attendance_removed"] == 0 and again["model_version"] == 3
    with pytest.raises(NotFound):
        erase_student(pipe.blobs, pipe.records, "never-enrolled", attendance=True)


def test_work_asked_for_before_the_erasure_cannot_bring_the_student_back(pipe, tmp_path):
    asked_at = ago(minutes=1)
    erase_student(pipe.blobs, pipe.records, "ann-7c1", attendance=True)
    with pytest.raises(StudentErased):
        enroll_student(pipe, "ann-7c1", ANN, requested_at=asked_at)
    assert "ann-7c1" not in pipe.gallery_repo.current_manifest().embeddings_per_student()
    assert pipe.records.get_student("ann-7c1") is None
    assert student_traces(tmp_path / "store", "ann-7c1") == []
