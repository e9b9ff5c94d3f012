"""Whatever step of an enrollment fails, what the client is told is what is stored: a failed
enrollment leaves no student, embedding, filed photo or audit entry behind; a successful one
is audited once."""

from __future__ import annotations

import pytest

from attendance.domain.keys import GALLERY_SEGMENTS, student_photos_prefix
from attendance.stores.jobs import new_job_id
from tests.fakes import Face, loading_no_tensorflow, photo
from tests.unit.test_services_enrollment import enroll_photos

PHOTOS = {f"{i}.png": photo(Face(1, shot=i)) for i in (1, 2, 3)}
RECORD_WRITES = ("swap_gallery_pointer", "upsert_student", "append_audit")


@pytest.fixture(autouse=True)
def _no_tensorflow():
    with loading_no_tensorflow():
        yield


class Failing:
    """A store whose ``nth`` call among ``methods`` raises, once (0: none does); counts them."""

    def __init__(self, inner, methods, nth=0):
        self.inner, self.methods, self.nth, self.calls = inner, methods, nth, 0

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name not in self.methods:
            return attr

        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self.nth:
                raise OSError(28, "No space left on device")
            return attr(*args, **kwargs)

        return call


def with_failing(pipe, blobs_nth=0, records_nth=0):
    blobs = Failing(pipe.blobs, ("put",), blobs_nth)
    records = Failing(pipe.records, RECORD_WRITES, records_nth)
    pipe.blobs = pipe.gallery_repo.blobs = blobs
    pipe.records = pipe.gallery_repo.records = records
    return blobs, records


def stored(pipe, student_id="ann") -> dict:
    manifest = pipe.gallery_repo.current_manifest()
    return {
        "student": pipe.records.get_student(student_id) is not None,
        "embeddings": bool(manifest and manifest.embeddings_per_student().get(student_id)),
        "photos": pipe.blobs.list(student_photos_prefix(student_id)),
        "segments": pipe.blobs.list(GALLERY_SEGMENTS),
        "audit": [a.target for a in pipe.records.list_audit() if a.target == student_id],
    }


def writes_of_one_enrollment(tmp_path) -> tuple[int, int]:
    from tests.fakes import fake_pipeline

    pipe = fake_pipeline(tmp_path / "count")
    # Uploads are the API's writes: counted from the enrollment on.
    blobs, records = with_failing(pipe)
    enroll_photos(pipe, "other", {"x.png": photo(Face(2, shot=1))})
    blobs.calls = records.calls = 0
    enroll_photos(pipe, "ann", PHOTOS, job_id="count")
    return blobs.calls - len(PHOTOS), records.calls


def test_each_step_of_an_enrollment_failing_leaves_nothing_of_it(tmp_path):
    from tests.fakes import fake_pipeline

    blob_writes, record_writes = writes_of_one_enrollment(tmp_path)
    assert blob_writes >= len(PHOTOS) + 2 and record_writes == len(RECORD_WRITES)
    cases = [("blob", n) for n in range(1, blob_writes + 1)]
    cases += [("records", n) for n in range(1, record_writes + 1)]
    for store, n in cases:
        pipe = fake_pipeline(tmp_path / f"{store}-{n}")
        enroll_photos(pipe, "other", {"x.png": photo(Face(2, shot=1))})  # a gallery to add to
        before = stored(pipe)
        # The uploads are written before the enrollment runs: the Nth write after them fails.
        blobs, _ = with_failing(pipe)
        blobs.nth = len(PHOTOS) + n if store == "blob" else 0
        if store == "records":
            pipe.records.nth = n
        with pytest.raises(OSError):
            enroll_photos(pipe, "ann", PHOTOS, job_id=new_job_id())
        assert stored(pipe) == before, (store, n)


def test_an_enrollment_that_took_effect_is_audited_once(tmp_path):
    from tests.fakes import fake_pipeline

    pipe = fake_pipeline(tmp_path)
    result = enroll_photos(pipe, "ann", PHOTOS)
    after = stored(pipe)
    assert result.accepted_photos == len(PHOTOS)
    assert after["student"] and after["embeddings"] and len(after["photos"]) == len(PHOTOS)
    assert after["audit"] == ["ann"]
