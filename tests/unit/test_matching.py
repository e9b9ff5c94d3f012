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


def test_match_groups_matches_each_photo_like_match_faces():
    from common.matching import candidate_set, match_groups

    photo1 = np.stack([unit(1, 0.05, 0), unit(0, 1, 0.02)])
    photo2 = np.stack([unit(1, 0.3, 0), unit(1, 0.01, 0), unit(1, 1, 1)])
    cands = candidate_set(GALLERY, IDS, {"ann", "bob", "cat"})
    got = match_groups(np.concatenate([photo1, photo2]), [2, 3], cands, threshold=0.3)
    assert got == [match_faces(photo1, GALLERY, IDS, {"ann", "bob", "cat"}, 0.3),
                   match_faces(photo2, GALLERY, IDS, {"ann", "bob", "cat"}, 0.3)]
    # ann may be matched once in each photo, not once per job.
    assert [m.student_id for m in got[0]] == ["ann", "bob"]
    assert [m.student_id for m in got[1]] == [None, "ann", None]
    assert match_groups(np.zeros((0, 3), np.float32), [0, 0], cands, 0.3) == [[], []]


def test_matching_in_blocks_gives_the_same_answer(monkeypatch):
    from common import matching

    rng = np.random.default_rng(1)
    gallery = normalise(rng.normal(size=(5000, 16)).astype(np.float32))
    ids = np.array([f"s{i // 3}" for i in range(5000)])
    faces = normalise(gallery[[10, 2000, 4999]] + 0.05 * rng.normal(size=(3, 16)).astype(np.float32))
    candidates = set(ids.tolist())
    whole = match_faces(faces, gallery, ids, candidates, 0.3)
    monkeypatch.setattr(matching, "BLOCK_ROWS", 97)
    assert match_faces(faces, gallery, ids, candidates, 0.3) == whole
    assert [m.student_id for m in whole] == ["s3", "s666", "s1666"]
