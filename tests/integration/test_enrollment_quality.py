"""No non-face is enrolled: every 5 Celebrity Faces train photo goes through the enrollment
rules, and each face they accept must be its person's. The photos of the val split decide: a
face is its person's when the nearest val photo is theirs (a car wheel, a sign or a dress, as
the Haar cascade used to accept, would land on a person at random)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import DEEPFACE_HOME

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.timeout(600)]
PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]


@pytest.fixture(scope="module")
def pipe():
    os.environ["DEEPFACE_HOME"] = str(DEEPFACE_HOME.resolve())
    from attendance.config.settings import Settings
    from attendance.face.detect import FaceDetector
    from attendance.face.embed import FaceNetEmbedder

    settings = Settings(_env_file=None, deepface_home=DEEPFACE_HOME)
    embedder = FaceNetEmbedder(
        settings.weights_path, settings.embed_batch_size, settings.embed_engine
    )
    return SimpleNamespace(
        settings=settings, detector=FaceDetector.from_settings(settings), embedder=embedder
    )


def detect(pipe, path):
    from attendance.photos.images import decode_bgr

    return pipe.detector.detect(decode_bgr(path.read_bytes()))


def test_every_face_enrollment_accepts_is_its_persons(pipe, celeb_dir):
    from attendance.domain.matching import normalise
    from attendance.services.enrollment import not_enrollable, the_one_face

    val, val_people = [], []
    for path in sorted((celeb_dir / "val").glob("*/*.jpg")):
        faces = [f for f in detect(pipe, path) if f.identifiable]
        if len(faces) == 1:
            val.append(faces[0].pixels)
            val_people.append(path.parent.name)
    val_vectors = normalise(pipe.embedder.embed(np.stack(val)))
    val_people = np.array(val_people)

    accepted, refused = [], []
    for person in PEOPLE:
        for path in sorted((celeb_dir / "train" / person).glob("*.jpg")):
            face, _ = the_one_face(detect(pipe, path), pipe.settings.min_face_px)
            if face is not None and not_enrollable(pipe, face) is None:
                accepted.append((person, path.name, face.pixels))
            else:
                refused.append(path.name)
    vectors = normalise(pipe.embedder.embed(np.stack([a[2] for a in accepted])))
    nearest = val_people[np.argmin(1.0 - vectors @ val_vectors.T, axis=1)]
    strays = [
        (person, name, who) for (person, name, _), who in zip(accepted, nearest) if who != person
    ]
    assert strays == [], strays
    # The rules are strict, not blind: most of the 93 photos (one face each) are taken.
    assert len(accepted) >= 75, (len(accepted), refused)
