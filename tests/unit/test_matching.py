import numpy as np

from attendance.domain.matching import match_faces, normalise


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
    from attendance.domain.matching import candidate_set, match_groups

    photo1 = np.stack([unit(1, 0.05, 0), unit(0, 1, 0.02)])
    photo2 = np.stack([unit(1, 0.3, 0), unit(1, 0.01, 0), unit(1, 1, 1)])
    cands = candidate_set(GALLERY, IDS, {"ann", "bob", "cat"})
    got = match_groups(np.concatenate([photo1, photo2]), [2, 3], cands, threshold=0.3)
    assert got == [
        match_faces(photo1, GALLERY, IDS, {"ann", "bob", "cat"}, 0.3),
        match_faces(photo2, GALLERY, IDS, {"ann", "bob", "cat"}, 0.3),
    ]
    # ann may be matched once in each photo, not once per job.
    assert [m.student_id for m in got[0]] == ["ann", "bob"]
    assert [m.student_id for m in got[1]] == [None, "ann", None]
    assert match_groups(np.zeros((0, 3), np.float32), [0, 0], cands, 0.3) == [[], []]


def test_matching_in_blocks_gives_the_same_answer(monkeypatch):
    from attendance.domain import matching

    rng = np.random.default_rng(1)
    gallery = normalise(rng.normal(size=(5000, 16)).astype(np.float32))
    ids = np.array([f"s{i // 3}" for i in range(5000)])
    faces = normalise(
        gallery[[10, 2000, 4999]] + 0.05 * rng.normal(size=(3, 16)).astype(np.float32)
    )
    candidates = set(ids.tolist())
    whole = match_faces(faces, gallery, ids, candidates, 0.3)
    monkeypatch.setattr(matching, "BLOCK_ROWS", 97)
    assert match_faces(faces, gallery, ids, candidates, 0.3) == whole
    assert [m.student_id for m in whole] == ["s3", "s666", "s1666"]


# --- a face is a student's when several of their photos agree -----------------------------------

ROWS = np.stack(
    [
        unit(1, 0, 0),
        unit(1, 0.6, 0),
        unit(1, -0.6, 0),  # dan: 3 photos
        unit(0, 1, 0),
        unit(0, 1, 0.7),  # eve: 2 photos
        unit(0, 0, 1),
    ]
)  # fay: 1 photo
ROW_IDS = np.array(["dan", "dan", "dan", "eve", "eve", "fay"])
EVERYONE = {"dan", "eve", "fay"}


def distance(a, b) -> float:
    return float(1 - a @ b)


def test_one_look_alike_photo_is_not_enough_when_two_must_agree():
    # Very close to one photo of dan's, far from his other two: a look-alike.
    face = unit(1, 0.6, 0.05)
    assert match_faces(face[None], ROWS, ROW_IDS, EVERYONE, 0.1)[0].student_id == "dan"
    [got] = match_faces(face[None], ROWS, ROW_IDS, EVERYONE, 0.1, min_photos=2)
    assert got.student_id is None


def test_when_two_agree_the_distance_is_the_second_nearest():
    face = unit(1, 0.25, 0)
    [got] = match_faces(face[None], ROWS, ROW_IDS, EVERYONE, 0.3, min_photos=2)
    second = sorted(distance(face, r) for r in ROWS[:3])[1]
    assert (
        got.student_id == "dan"
        and got.distance == np.float32(second)
        or abs(got.distance - second) < 1e-6
    )


def test_a_student_with_fewer_photos_needs_all_of_them():
    only = unit(0, 0.05, 1)  # fay has one photo
    assert (
        match_faces(only[None], ROWS, ROW_IDS, EVERYONE, 0.1, min_photos=3)[0].student_id == "fay"
    )
    both = unit(0, 1, 0.35)  # between eve's two photos
    got = match_faces(both[None], ROWS, ROW_IDS, EVERYONE, 0.1, min_photos=3)[0]
    assert got.student_id == "eve"
    assert abs(got.distance - max(distance(both, r) for r in ROWS[3:5])) < 1e-6


def test_with_agreement_each_student_still_goes_to_one_face_per_photo():
    # The first face is nearer dan's nearest photo, the second agrees better with two of them:
    # the second wins.
    faces = np.stack([unit(1, 0.01, 0), unit(1, 0.3, 0)])
    got = match_faces(faces, ROWS, ROW_IDS, EVERYONE, 0.3, min_photos=2)
    assert [m.student_id for m in got] == [None, "dan"]
    assert [m.student_id for m in match_faces(faces, ROWS, ROW_IDS, EVERYONE, 0.3)] == ["dan", None]
