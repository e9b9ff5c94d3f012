"""A withdrawal of consent always wins over an enrollment running at the same moment
(attendance.services.enrollment): on real local stores with the fake detector and embedder,
the withdrawal is made to land at each point of the enrollment in turn."""

from __future__ import annotations

import datetime as dt

import pytest

from attendance.domain.consent import parse_consent
from attendance.domain.errors import ConsentRequired, ConsentWithdrawn, ValidationFailed
from attendance.domain.keys import enrollment_marker_key, student_photos_prefix, upload_prefix
from attendance.domain.schemas import EnrollmentRequest, RecognitionRequest
from attendance.services.enrollment import enroll
from attendance.services.erasure import erase_face_data
from attendance.services.recognition import recognise
from attendance.stores.jobs import new_job_id
from tests.consent import CONSENT_FORM, give_consent
from tests.fakes import Face, fake_pipeline, loading_no_tensorflow, photo, store_uploads

ANN = 1
# enroll() reads the consent three times: before it starts, before it commits, after its swap.
BEFORE_START, BEFORE_COMMIT, AFTER_SWAP = 1, 2, 3


@pytest.fixture(autouse=True)
def _no_tensorflow():
    with loading_no_tensorflow():
        yield


@pytest.fixture
def pipe(tmp_path):
    return fake_pipeline(tmp_path)


class WithdrawnAt:
    """The pipeline's records store, but with a withdrawal of consent just before or just
    after its n-th read (recorded only, or recorded and then the face data erased)."""

    def __init__(self, records, blobs, n: int, *, before: bool, erase: bool):
        self._records, self._blobs = records, blobs
        self._n, self._before, self._erase = n, before, erase
        self.reads = 0

    def __getattr__(self, name):
        return getattr(self._records, name)

    def _withdraw(self, student_id: str) -> None:
        self._records.withdraw_consent(student_id, "admin", dt.datetime.now(dt.UTC))
        if self._erase:
            erase_face_data(self._blobs, self._records, student_id)

    def get_consent(self, student_id):
        self.reads += 1
        if self.reads == self._n and self._before:
            self._withdraw(student_id)
        seen = self._records.get_consent(student_id)
        if self.reads == self._n and not self._before:
            self._withdraw(student_id)
        return seen


def request(pipe, student_id="ann") -> EnrollmentRequest:
    job_id = new_job_id()
    photos = {f"{i}.png": photo(Face(ANN, shot=i)) for i in (1, 2)}
    # As the API does with the uploads: the erasure finds the job by it.
    pipe.blobs.put(enrollment_marker_key(student_id, job_id), b"")
    return EnrollmentRequest(
        job_id=job_id,
        student_id=student_id,
        name="Ann Example",
        class_id="room-1",
        photos=store_uploads(pipe.blobs, job_id, photos),
        requested_by="tester",
        requested_at=dt.datetime.now(dt.UTC),
    )


def face_data_of(pipe, student_id="ann") -> tuple[int, list[str]]:
    manifest = pipe.gallery_repo.current_manifest()
    embeddings = manifest.embeddings_per_student().get(student_id, 0) if manifest else 0
    photos = [k for k in pipe.blobs.list(student_photos_prefix(student_id)) if "/jobs/" not in k]
    return embeddings, photos


@pytest.mark.parametrize(
    "n, before, erase",
    [
        (BEFORE_START, True, False),  # withdrawn while the job was queued
        (BEFORE_START, False, False),  # withdrawn while it detected and embedded
        # Withdrawn after the check before the commit, and erased before the swap: the
        # erasure's tombstone refuses the swap.
        (BEFORE_COMMIT, False, True),
        # Withdrawn after that check, its erasure not yet run (or run before the swap, so it
        # did not see it): the check after the swap sees the withdrawal and takes it back.
        (BEFORE_COMMIT, False, False),
        (AFTER_SWAP, True, True),  # withdrawn and erased between the swap and the last check
    ],
)
def test_a_withdrawal_during_an_enrollment_leaves_none_of_it(pipe, n, before, erase):
    give_consent(pipe.records, "ann")
    req = request(pipe)
    records = pipe.records
    pipe.records = WithdrawnAt(records, pipe.blobs, n, before=before, erase=erase)
    with pytest.raises(ConsentWithdrawn):
        enroll(pipe, req, lambda *_: None)
    assert pipe.records.reads >= n
    assert face_data_of(pipe) == (0, [])
    if n >= BEFORE_COMMIT:
        # Its uploads went with what it took back, or with the erasure.
        assert pipe.blobs.list(upload_prefix(req.job_id)) == []
    assert not records.get_consent("ann").active


def test_a_withdrawal_after_the_last_check_is_undone_by_its_erasure(pipe):
    give_consent(pipe.records, "ann")
    result = enroll(pipe, request(pipe), lambda *_: None)
    assert result.accepted_photos == 2 and face_data_of(pipe)[0] == 2
    pipe.records.withdraw_consent("ann", "admin", dt.datetime.now(dt.UTC))
    summary = erase_face_data(pipe.blobs, pipe.records, "ann")
    assert summary["embeddings_removed"] == 2 and summary["photos_removed"] >= 2
    assert face_data_of(pipe) == (0, [])
    # The student stays, and so does the consent record (withdrawn).
    assert pipe.records.get_student("ann").name == "Ann Example"
    assert pipe.records.get_consent("ann").withdrawn_by == "admin"


def test_an_enrollment_without_consent_on_record_commits_nothing(pipe):
    with pytest.raises(ConsentRequired, match="consent_given_by"):
        enroll(pipe, request(pipe), lambda *_: None)
    assert face_data_of(pipe) == (0, []) and pipe.gallery_repo.current_manifest() is None
    assert pipe.records.get_student("ann") is None


def test_consent_given_again_after_a_withdrawal_enrolls_again(pipe):
    give_consent(pipe.records, "ann")
    pipe.records.withdraw_consent("ann", "admin", dt.datetime.now(dt.UTC))
    erase_face_data(pipe.blobs, pipe.records, "ann")
    give_consent(pipe.records, "ann")
    assert enroll(pipe, request(pipe), lambda *_: None).accepted_photos == 2
    assert face_data_of(pipe)[0] == 2


TODAY = dt.date(2026, 12, 1)


@pytest.mark.parametrize(
    "changes, code",
    [
        ({"consent_relationship": "self"}, "minor_needs_parent"),
        ({"consent_relationship": "aunt"}, "invalid_consent"),
        ({"consent_given_on": "2026-12-02"}, "invalid_consent"),  # the future
        ({"consent_given_on": "2026-02-30"}, "invalid_consent"),
        ({"consent_given_on": "20260901"}, "invalid_consent"),
        ({"consent_given_by": ""}, "invalid_consent"),
        ({"consent_given_by": "bell\x07"}, "invalid_consent"),
        ({"minor": "yes"}, "invalid_consent"),
    ],
)
def test_consent_as_given_is_checked(changes, code):
    with pytest.raises(ValidationFailed) as refused:
        parse_consent({**CONSENT_FORM, **changes}, TODAY)
    assert refused.value.code == code


def test_an_adult_may_consent_for_themselves_and_no_fields_is_no_consent():
    given = parse_consent({**CONSENT_FORM, "consent_relationship": "self", "minor": "false"}, TODAY)
    assert given is not None and (given.relationship, given.minor) == ("self", False)
    assert parse_consent({"minor": "true"}, TODAY) is None
    default = parse_consent({k: v for k, v in CONSENT_FORM.items() if k != "minor"}, TODAY)
    assert default is not None and default.minor is True


# --- a recognition running meanwhile ------------------------------------------------------------


def recognise_ann(pipe, requested_at: dt.datetime | None = None):
    job_id = new_job_id()
    req = RecognitionRequest(
        job_id=job_id,
        class_id="room-1",
        date=dt.date(2026, 11, 2),
        photos=store_uploads(pipe.blobs, job_id, {"class.png": photo(Face(ANN, shot=9))}),
        requested_at=requested_at,
    )
    return recognise(pipe, req, lambda *_: None)


def test_a_recognition_leaves_out_a_withdrawn_student_before_the_erasure_reaches_the_gallery(
    pipe,
):
    give_consent(pipe.records, "ann")
    enroll(pipe, request(pipe), lambda *_: None)
    assert recognise_ann(pipe).present == ["ann"]
    pipe.records.delete_attendance("ann")
    # Withdrawn, the face data not erased yet: the gallery still holds Ann's embeddings.
    pipe.records.withdraw_consent("ann", "admin", dt.datetime.now(dt.UTC))
    assert face_data_of(pipe)[0] == 2
    result = recognise_ann(pipe)
    assert result.present == [] and pipe.records.list_attendance(student_id="ann") == []
    assert [f.outcome for f in result.photos[0].faces] == ["unknown"]


def test_a_recognition_asked_for_before_a_withdrawal_marks_nobody_after_it(pipe):
    give_consent(pipe.records, "ann")
    enroll(pipe, request(pipe), lambda *_: None)
    asked = dt.datetime.now(dt.UTC)
    # The withdrawal and its erasure land while the recognition runs, after it loaded the
    # gallery: its mark is refused by the erasure's tombstone.
    pipe.gallery.refresh()
    marks = pipe.records.mark_present

    def withdrawn_first(record, **kwargs):
        pipe.records.withdraw_consent("ann", "admin", dt.datetime.now(dt.UTC))
        erase_face_data(pipe.blobs, pipe.records, "ann")
        return marks(record, **kwargs)

    pipe.records.mark_present = withdrawn_first
    result = recognise_ann(pipe, requested_at=asked)
    assert result.present == [] and pipe.records.list_attendance(student_id="ann") == []
