import numpy as np

from common.gallery import normalise
from common.matching import match_faces


def unit(*v):
    return normalise(np.array([v], dtype=np.float32))[0]


GALLERY = np.stack([unit(1, 0, 0), unit(0.9, 0.1, 0), unit(0, 1, 0), unit(0, 0, 1)])
IDS = np.array(["ann", "ann", "bob", "cat"])


def test_nearest_student_within_threshold():
    faces = np.stack([unit(1, 0.05, 0), unit(0, 1, 0.02)])
    got = match_faces(faces, GALLERY, IDS, {"ann", "bob", "cat"}, threshold=0.3)
    assert [m.student_id for m in got] == ["ann", "bob"]
    assert got[0].distance < 0.01


def test_face_far_from_everyone_is_unknown_not_forced():
    faces = np.stack([unit(1, 1, 1)])  # 0.36 from ann (0.9, 0.1, 0), 0.42 from the others
    got = match_faces(faces, GALLERY, IDS, {"ann", "bob", "cat"}, threshold=0.3)
    assert got[0].student_id is None
    assert 0.35 < got[0].distance < 0.37


def test_only_students_of_the_class_are_candidates():
    faces = np.stack([unit(0, 0, 1)])
    got = match_faces(faces, GALLERY, IDS, {"ann", "bob"}, threshold=0.3)
    assert got[0].student_id is None


def test_a_student_is_matched_at_most_once_per_photo_closest_face_wins():
    faces = np.stack([unit(1, 0.3, 0), unit(1, 0.01, 0)])
    got = match_faces(faces, GALLERY, IDS, {"ann", "bob"}, threshold=0.3)
    assert [m.student_id for m in got] == [None, "ann"]


def test_empty_inputs():
    assert match_faces(np.zeros((0, 3), np.float32), GALLERY, IDS, {"ann"}, 0.3) == []
    got = match_faces(np.stack([unit(1, 0, 0)]), GALLERY, IDS, set(), 0.3)
    assert got[0].student_id is None and got[0].distance is None
