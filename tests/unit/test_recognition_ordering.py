"""Recognition writes the register before the annotated photos: a photo whose annotated copy
cannot be stored costs that copy only, and an erasure that lands between the marks and the
annotated photos never leaves a stored photo naming the erased student."""

from __future__ import annotations

import pytest

import attendance.services.recognition as recognition
from attendance.domain.keys import ANNOTATED
from attendance.services.erasure import erase_student
from tests.fakes import Face, photo
from tests.unit.test_services_recognition import (
    ANN,
    BEN,
    outcomes,
    pipe,  # noqa: F401 (a fixture)
    present_in_records,
    recognise_photos,
)


class Blobs:
    """The pipeline's blob store, with a hook run before each annotated photo is stored."""

    def __init__(self, inner, before_annotated=None):
        self.inner = inner
        self.before_annotated = before_annotated
        self.fail_deletes = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, content_type="application/octet-stream"):
        if key.startswith(ANNOTATED) and self.before_annotated is not None:
            self.before_annotated(key)
        self.inner.put(key, data, content_type)


@pytest.fixture
def drawn(monkeypatch):
    """{JPEG bytes: the names drawn on it}, for every annotated photo drawn."""
    names: dict[bytes, list[str | None]] = {}
    real = recognition.annotate

    def annotate(image, faces):
        jpeg = real(image, faces)
        names[jpeg] = [f.name for f in faces]
        return jpeg

    monkeypatch.setattr(recognition, "annotate", annotate)
    return names


def names_stored(pipe, drawn) -> dict[str, list[str | None]]:
    return {key: drawn[pipe.blobs.get(key)] for key in pipe.blobs.list(ANNOTATED)}


def test_an_annotated_photo_that_cannot_be_stored_costs_only_that_photo(pipe, drawn):  # noqa: F811
    def refuse(key):
        if key.endswith("/000.jpg"):
            raise OSError(28, "No space left on device")

    pipe.blobs = Blobs(pipe.blobs, refuse)
    result = recognise_photos(
        pipe, {"a.png": photo(Face(ANN, shot=5)), "b.png": photo(Face(BEN, shot=5))}
    )
    assert result.present == ["ann", "ben"] == present_in_records(pipe)
    first, second = result.photos
    assert first.annotated_key is None and "could not be stored" in first.annotation_error
    assert outcomes(result)[0] == [("recognised", "ann", None)]  # the faces are still reported
    assert second.annotated_key is not None and second.annotation_error is None
    assert list(names_stored(pipe, drawn).values()) == [["Ben"]]


def test_a_student_erased_between_their_mark_and_the_annotated_photos_is_on_none(
    pipe,  # noqa: F811
    drawn,
):
    erased = []

    def erase_ann_once(_key):
        if not erased:
            assert "ann" in present_in_records(pipe)  # after the mark
            erase_student(pipe.blobs.inner, pipe.records, "ann", attendance=True)
            erased.append("ann")

    pipe.blobs = Blobs(pipe.blobs, erase_ann_once)
    result = recognise_photos(
        pipe,
        {"a.png": photo(Face(ANN, shot=5), Face(BEN, shot=5)), "b.png": photo(Face(ANN, shot=6))},
    )
    assert erased
    stored = names_stored(pipe, drawn)
    assert stored and all("Ann" not in names for names in stored.values()), stored
    assert result.present == ["ben"] == present_in_records(pipe)
    assert "ann" not in {f.student_id for p in result.photos for f in p.faces}


def test_a_photo_naming_an_erased_student_that_cannot_be_drawn_again_is_deleted(
    pipe,  # noqa: F811
    drawn,
):
    erased = []

    def erase_ann_then_refuse(_key):
        if erased:
            raise OSError(28, "No space left on device")
        erase_student(pipe.blobs.inner, pipe.records, "ann", attendance=True)
        erased.append("ann")

    pipe.blobs = Blobs(pipe.blobs, erase_ann_then_refuse)
    result = recognise_photos(pipe, {"a.png": photo(Face(ANN, shot=5), Face(BEN, shot=5))})
    assert erased
    assert names_stored(pipe, drawn) == {}  # the copy naming Ann is gone
    assert result.photos[0].annotated_key is None and result.photos[0].annotation_error
    assert result.present == ["ben"] == present_in_records(pipe)
