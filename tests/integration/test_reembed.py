"""Changing the detector: embeddings of the old pipeline are never matched, POST
/api/v1/model/reembed makes new ones from the stored enrollment photos. Real workers, one with
ATTENDANCE_DETECTOR=opencv, then one with centerface, on the same stores."""

from __future__ import annotations

import time

import pytest

from tests.conftest import make_stack, stop_process
from tests.integration.test_end_to_end import enroll, files, recognise

DB = 5
OLD, NEW = "Facenet/opencv-v1", "Facenet/centerface-v1"
pytestmark = pytest.mark.timeout(900)


def model(stack) -> dict:
    resp = stack.client.get("/api/v1/model")
    assert resp.status_code == 200
    return resp.get_json()


def reembed(stack) -> dict:
    resp = stack.client.post("/api/v1/model/reembed")
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status_url"] == f"/api/v1/jobs/{body['job_id']}"
    return stack.wait_for_job(body["job_id"])


def test_a_new_detector_recognises_students_once_reembedded(tmp_path, faces_dir):
    stores = dict(
        blob_store_url=f"file://{tmp_path}/store", records_url=f"sqlite:///{tmp_path}/attendance.db"
    )
    old = make_stack(tmp_path, DB, detector="opencv", **stores)
    old.worker = old.start_worker("opencv")
    try:
        job = enroll(
            old,
            "jolie",
            "Angelina Jolie",
            "room-1",
            files([faces_dir / "img2.jpg", faces_dir / "img4.jpg"]),
        )
        assert job["state"] == "succeeded", job
        assert job["result"]["accepted_photos"] == 2
        job = recognise(old, "room-1", files([faces_dir / "img5.jpg"]))
        assert job["result"]["present"] == ["jolie"], job
        info = model(old)
        assert (info["pipeline"], info["students"], info["embeddings"]) == (OLD, 1, 2)
        assert info["other_pipelines"] == {} and info["students_to_reembed"] == 0
    finally:
        stop_process(old.worker)

    new = make_stack(tmp_path, DB, detector="centerface", **stores)
    new.worker = new.start_worker("centerface")
    try:
        # The old embeddings are kept but never matched against CenterFace's.
        job = recognise(new, "room-1", files([faces_dir / "img5.jpg"]), date="2026-11-03")
        assert job["state"] == "succeeded", job
        assert job["result"]["present"] == [], job
        faces = job["result"]["photos"][0]["faces"]
        assert faces and all(f["student_id"] is None for f in faces)
        info = model(new)
        assert info["pipeline"] == NEW and info["detector"] == "centerface"
        assert (info["students"], info["embeddings"]) == (0, 0)
        assert info["other_pipelines"] == {OLD: 2} and info["students_to_reembed"] == 1
        assert new.client.get("/api/v1/students/jolie").get_json()["embeddings"] == 0

        started = time.monotonic()
        job = reembed(new)
        elapsed = time.monotonic() - started
        assert job["state"] == "succeeded", job
        assert job["kind"] == "enrollment"
        result = job["result"]
        assert (result["pipeline"], result["students"], result["embeddings"]) == (NEW, 1, 2)
        assert result["skipped"] == []
        assert job["progress"] == {"done": 1, "total": 1}
        print(f"re-embedding 1 student (2 photos) took {elapsed:.2f} s from POST to result")

        info = model(new)
        assert (info["students"], info["embeddings"], info["students_to_reembed"]) == (1, 2, 0)
        assert info["other_pipelines"] == {OLD: 2}  # kept until removed (README)
        version = info["version"]

        for photo in ("img5.jpg", "couple.jpg"):
            job = recognise(new, "room-1", files([faces_dir / photo]), date="2026-11-04")
            assert job["state"] == "succeeded", job
            assert job["result"]["present"] == ["jolie"], (photo, job["result"])

        # Again (as a redelivered task does): nothing is added twice.
        job = reembed(new)
        assert job["state"] == "succeeded", job
        assert (job["result"]["students"], job["result"]["embeddings"]) == (1, 2)
        assert model(new)["version"] == version

        # The re-embedded segment is the student's like any other: erasure removes it too.
        resp = new.client.delete("/api/v1/students/jolie")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["embeddings_removed"] == 4
        info = model(new)
        assert (info["embeddings"], info["other_pipelines"]) == (0, {})
        segments = list((tmp_path / "store" / "gallery" / "segments").glob("*"))
        assert segments == [], segments
    finally:
        stop_process(new.worker)


def test_reembed_with_nothing_to_do_and_a_photo_the_new_detector_rejects(tmp_path, faces_dir):
    """A photo in which the new detector finds no single face is skipped with its reason; the
    student's other photos are re-embedded."""
    from attendance.domain.keys import student_photos_prefix
    from attendance.stores.blob import open_blob_store

    stores = dict(
        blob_store_url=f"file://{tmp_path}/store", records_url=f"sqlite:///{tmp_path}/attendance.db"
    )
    old = make_stack(tmp_path, DB, detector="opencv", **stores)
    old.worker = old.start_worker("opencv")
    try:
        job = reembed(old)  # an empty gallery: nothing to do
        assert job["state"] == "succeeded", job
        assert job["result"]["students"] == 0 and job["result"]["skipped"] == []
        job = enroll(
            old,
            "jolie",
            "Angelina Jolie",
            "room-1",
            files([faces_dir / "img2.jpg", faces_dir / "img4.jpg"]),
        )
        assert job["state"] == "succeeded", job
        job = reembed(old)  # every embedding is of this pipeline already
        assert job["state"] == "succeeded", job
        assert job["result"]["students"] == 0 and job["result"]["skipped"] == []
    finally:
        stop_process(old.worker)

    # One stored photo replaced by a photo of two people: the new detector finds two faces.
    blobs = open_blob_store(stores["blob_store_url"])
    prefix = student_photos_prefix("jolie")
    photos = sorted(k for k in blobs.list(prefix) if "/" not in k[len(prefix) :])
    assert len(photos) == 2
    blobs.put(photos[1], (faces_dir / "couple.jpg").read_bytes())

    new = make_stack(tmp_path, DB, detector="centerface", **stores)
    new.worker = new.start_worker("centerface")
    try:
        job = reembed(new)
        assert job["state"] == "succeeded", job
        result = job["result"]
        assert (result["students"], result["embeddings"]) == (1, 1)
        assert len(result["skipped"]) == 1
        skipped = result["skipped"][0]
        assert skipped["student_id"] == "jolie"
        assert skipped["reason"].startswith(photos[1].rsplit("/", 1)[-1] + ": ")
        assert "faces found" in skipped["reason"]
        assert model(new)["students_to_reembed"] == 0
    finally:
        stop_process(new.worker)
