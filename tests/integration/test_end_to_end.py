"""The whole path on real parts: HTTP upload -> Redis -> a Celery worker running FaceNet -> stores."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests import redis_db
from tests.consent import CONSENT_FORM

CELEBS = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
JOLIE_PHOTOS = ["img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg"]
pytestmark = pytest.mark.timeout(1200)


def files(paths: list[Path]) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(p.read_bytes()), p.name) for p in paths]


def enroll(stack, student_id: str, name: str, class_id: str, photos) -> dict:
    resp = stack.client.post(
        "/api/v1/students",
        data={
            "student_id": student_id,
            "name": name,
            "class_id": class_id,
            "photos": photos,
            **CONSENT_FORM,
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status_url"] == f"/api/v1/jobs/{body['job_id']}"
    return stack.wait_for_job(body["job_id"])


def recognise(stack, class_id: str, photos, date: str = "2026-11-02") -> dict:
    resp = stack.client.post(
        "/api/v1/recognitions",
        data={"class_id": class_id, "date": date, "photos": photos},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    return stack.wait_for_job(resp.get_json()["job_id"])


def attendance(stack, class_id: str, date: str) -> list[dict]:
    resp = stack.client.get(f"/api/v1/attendance?class_id={class_id}&date={date}")
    assert resp.status_code == 200
    return resp.get_json()["records"]


def blank_png() -> tuple[io.BytesIO, str]:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 140, 160)).save(out, format="PNG")
    out.seek(0)
    return out, "wall.png"


@pytest.fixture(params=["local", "cloud"])
def backends(request):
    """The stack on local files + SQLite, then the one on GCS + DynamoDB (emulated over HTTP)."""
    return request.getfixturevalue("stack" if request.param == "local" else "cloud_stack")


def test_jolie_in_group_photos_once_each_rest_unknown(backends, faces_dir):
    stack = backends
    job = enroll(
        stack, "jolie", "Angelina Jolie", "room-1", files([faces_dir / f for f in JOLIE_PHOTOS])
    )
    assert job["state"] == "succeeded", job
    assert job["kind"] == "enrollment"
    assert job["result"]["accepted_photos"] == 4 and job["result"]["rejected"] == []
    assert job["progress"] == {"done": 4, "total": 4}

    job = recognise(
        stack, "room-1", files([faces_dir / "couple.jpg", faces_dir / "selfie-many-people.jpg"])
    )
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert result["present"] == ["jolie"]
    for photo in result["photos"]:
        ids = [f["student_id"] for f in photo["faces"]]
        assert ids.count("jolie") == 1, (photo["filename"], ids)
        assert set(ids) == {"jolie", None}, ids
        assert len(ids) >= 2
        jolie = next(f for f in photo["faces"] if f["student_id"] == "jolie")
        assert jolie["name"] == "Angelina Jolie"
        assert jolie["distance"] < stack.settings.match_threshold
        for face in photo["faces"]:
            assert set(face["box"]) == {"x", "y", "w", "h"} and face["box"]["w"] > 0
    assert result["unknown_faces"] == sum(len(p["faces"]) for p in result["photos"]) - 2
    # The best of her two faces is the evidence.
    [evidence] = result["evidence"]
    best = min(
        (f["distance"], i, k)
        for i, p in enumerate(result["photos"])
        for k, f in enumerate(p["faces"])
        if f["student_id"] == "jolie"
    )
    assert (evidence["student_id"], evidence["distance"], evidence["photo"], evidence["face"]) == (
        "jolie",
        *best,
    )
    # Every face in both photos, and nothing else (tests/data/faces/labels.json: 2 and 7).
    assert [len(p["faces"]) for p in result["photos"]] == [2, 7]
    assert {f["outcome"] for p in result["photos"] for f in p["faces"]} == {"recognised", "unknown"}

    # The annotated photo is stored and served.
    resp = stack.client.get(f"/api/v1/annotated/{job['job_id']}/0")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(resp.data)).size[0] > 0

    records = attendance(stack, "room-1", "2026-11-02")
    assert [(r["student_id"], r["name"]) for r in records] == [("jolie", "Angelina Jolie")]


def test_faces_too_small_to_recognise_are_reported_not_matched(stack, faces_dir):
    """The front rows of retina_img3.jpg are 30-45 px faces, with a crowd of smaller ones
    behind: found, drawn in amber, never matched nor counted as unknown."""
    job = enroll(
        stack,
        "jolie-s",
        "Angelina Jolie",
        "room-s",
        files([faces_dir / f for f in JOLIE_PHOTOS[:2]]),
    )
    assert job["state"] == "succeeded", job
    crowd = Path(__file__).resolve().parents[1] / "data" / "groups" / "retina_img3.jpg"
    job = recognise(stack, "room-s", files([crowd]))
    assert job["state"] == "succeeded", job
    result = job["result"]
    faces = result["photos"][0]["faces"]
    unclear = [f for f in faces if f["outcome"] == "unidentifiable"]
    assert len(unclear) >= 10 and result["unidentifiable_faces"] == len(unclear)
    assert all(f["student_id"] is None and f["distance"] is None and f["reason"] for f in unclear)
    assert result["unknown_faces"] == len(faces) - len(unclear)
    assert result["present"] == []
    assert stack.client.get(f"/api/v1/annotated/{job['job_id']}/0").status_code == 200


def test_enrollment_refuses_a_photo_of_someone_else(stack, faces_dir, celeb_dir):
    """Three photos of Angelina Jolie and one of Ben Affleck under one student: his is refused
    in plain words, hers are enrolled; more photos of him later are refused too."""
    ben = sorted((celeb_dir / "train" / "ben_afflek").glob("*.jpg"))[0]
    job = enroll(
        stack,
        "jolie-c",
        "Angelina Jolie",
        "room-c",
        files([faces_dir / f for f in JOLIE_PHOTOS[:3]] + [ben]),
    )
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert result["accepted_photos"] == 3
    assert [(r["filename"], r["reason"].split(" (")[0]) for r in result["rejected"]] == [
        (ben.name, "does not look like the other photos of this student")
    ]
    resp = stack.client.post(
        "/api/v1/students/jolie-c/photos",
        data={"photos": files([ben])},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    added = stack.wait_for_job(resp.get_json()["job_id"])
    assert added["state"] == "failed" and added["error"]["code"] == "no_usable_photo", added
    assert stack.client.get("/api/v1/students/jolie-c").get_json()["embeddings"] == 3


def test_enrollment_rejects_photos_without_exactly_one_face(stack, faces_dir):
    photos = files([faces_dir / "img2.jpg", faces_dir / "couple.jpg"]) + [blank_png()]
    job = enroll(stack, "jolie2", "Angelina J.", "room-2", photos)
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert result["accepted_photos"] == 1
    reasons = {r["filename"]: r["reason"] for r in result["rejected"]}
    assert reasons["wall.png"] == "no face found"
    assert reasons["couple.jpg"].startswith("2 faces found")


def test_enrollment_with_no_usable_photo_fails_and_changes_nothing(stack):
    before_model = stack.client.get("/api/v1/model").get_json()
    job = enroll(stack, "nobody", "No Body", "room-3", [blank_png(), blank_png()])
    assert job["state"] == "failed"
    assert job["error"]["code"] == "no_usable_photo"
    assert "wall.png: no face found" in job["error"]["message"]
    assert stack.client.get("/api/v1/students/nobody").status_code == 404
    assert stack.client.get("/api/v1/model").get_json()["version"] == before_model["version"]


def test_celebrity_faces_val_split_recognised(backends, celeb_dir):
    stack = backends
    for person in CELEBS:
        photos = sorted((celeb_dir / "train" / person).glob("*.jpg"))
        # The API takes at most 20 photos a request; a second request adds to the student.
        job = enroll(stack, person, person.replace("_", " ").title(), "celebs", files(photos[:20]))
        assert job["state"] == "succeeded", job
        for start in range(20, len(photos), 20):
            resp = stack.client.post(
                f"/api/v1/students/{person}/photos",
                data={"photos": files(photos[start : start + 20])},
                content_type="multipart/form-data",
            )
            assert resp.status_code == 202, resp.get_json()
            job = stack.wait_for_job(resp.get_json()["job_id"])
            assert job["state"] == "succeeded", job

    students = stack.client.get("/api/v1/students?class_id=celebs").get_json()["students"]
    assert sorted(s["student_id"] for s in students) == CELEBS
    assert all(s["embeddings"] >= 10 and s["class_ids"] == ["celebs"] for s in students)

    val = sorted((celeb_dir / "val").glob("*/*.jpg"))
    assert len(val) == 25
    job = recognise(stack, "celebs", files(val), date="2026-11-03")
    assert job["state"] == "succeeded", job
    assert job["progress"] == {"done": 25, "total": 25}
    correct = 0
    for path, photo in zip(val, job["result"]["photos"]):
        assert photo["filename"] == path.name
        if photo["faces"]:
            largest = max(photo["faces"], key=lambda f: f["box"]["w"] * f["box"]["h"])
            correct += largest["student_id"] == path.parent.name
    print(f"5 Celebrity Faces val: {correct}/25 recognised")
    assert correct >= 24, f"{correct}/25 recognised"

    records = attendance(stack, "celebs", "2026-11-03")
    assert sorted(r["student_id"] for r in records) == sorted(job["result"]["present"])
    assert len(records) == 5

    # The same photos again, the same day: nothing is recorded twice.
    again = recognise(stack, "celebs", files(val[:3]), date="2026-11-03")
    assert again["state"] == "succeeded"
    assert attendance(stack, "celebs", "2026-11-03") == records


def test_redelivered_tasks_change_nothing(stack, faces_dir):
    """acks_late can run a task twice: the second run adds no embedding and no record."""

    from attendance.dispatch import ENROLL_TASK, RECOGNISE_TASK, enqueue, make_celery
    from attendance.domain.schemas import EnrollmentRequest, RecognitionRequest, Upload
    from attendance.stores.blob import open_blob_store
    from attendance.stores.jobs import JobStore, new_job_id
    from attendance.stores.records import open_records
    from tests.consent import give_consent

    blobs = open_blob_store(stack.settings.blob_store_url)
    jobs = JobStore(redis_db.client(stack.settings.redis_url), 3600)
    celery = make_celery(stack.settings)

    def run_twice(kind, task, make_request, photo):
        job_id = new_job_id()
        key = f"uploads/{job_id}/000.jpg"
        blobs.put(key, (faces_dir / photo).read_bytes())
        payload = make_request(job_id, [Upload(key=key, filename=photo)]).model_dump(mode="json")
        for _ in range(2):
            jobs.create(job_id, kind, 1)
            enqueue(celery, task, payload, job_id)
            done = stack.wait_for_job(job_id)
            assert done["state"] == "succeeded", done
        return done

    def model():
        return stack.client.get("/api/v1/model").get_json()

    before = model()
    give_consent(open_records(stack.settings.records_url), "jolie3")
    run_twice(
        "enrollment",
        ENROLL_TASK,
        lambda job_id, photos: EnrollmentRequest(
            job_id=job_id,
            student_id="jolie3",
            name="A. Jolie",
            class_id="room-4",
            photos=photos,
        ),
        "img4.jpg",
    )
    after = model()
    assert after["embeddings"] == before["embeddings"] + 1
    assert after["version"] == before["version"] + 1

    done = run_twice(
        "recognition",
        RECOGNISE_TASK,
        lambda job_id, photos: RecognitionRequest(
            job_id=job_id,
            class_id="room-4",
            date="2026-11-04",
            photos=photos,
        ),
        "img5.jpg",
    )
    assert done["result"]["present"] == ["jolie3"]
    records = attendance(stack, "room-4", "2026-11-04")
    assert [r["student_id"] for r in records] == ["jolie3"]
    assert model() == after
