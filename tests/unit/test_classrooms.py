"""src/attendance/bench/classrooms.py: a small synthetic classroom's ground truth is consistent with itself."""

from __future__ import annotations

import numpy as np
import pytest

from attendance.bench import classrooms as C

SIZE = (1600, 1200)  # the room at 0.4x: faces 16-60 px


def _sources():
    if not (C.CELEB_DIR / "val").is_dir():
        pytest.skip(f"5 Celebrity Faces not found in {C.CELEB_DIR}; run `make provision`")
    if C.centerface_weights() is None:
        pytest.skip(
            "CenterFace weights not found in " + ", ".join(map(str, C.CENTERFACE_CANDIDATES))
        )
    enrolled, strangers = C.default_sources()
    strangers = {p: [f for f in fs if f.is_file()] for p, fs in strangers.items()}
    return enrolled, strangers


@pytest.fixture(scope="module")
def room():
    enrolled, strangers = _sources()
    return C.make_classroom(7, enrolled, strangers, "hard", size=SIZE)


def test_truth_is_inside_the_photo_and_sized_as_the_scene(room):
    assert (room.width, room.height) == SIZE
    assert room.jpeg[:2] == b"\xff\xd8"
    from attendance.photos.images import decode_bgr

    assert decode_bgr(room.jpeg).shape == (SIZE[1], SIZE[0], 3)
    lo, hi = C.HARD.faces
    assert lo - 3 <= len(room.faces) <= hi  # a face with no room is left out, rarely
    k = SIZE[0] / C.SIZE[0]
    w_lo = min(r[2] for r in C.HARD.rows) * k
    w_hi = max(r[3] for r in C.HARD.rows) * k
    for f in room.faces:
        x, y, w, h = f.box
        assert 0 <= x and 0 <= y and x + w <= room.width and y + h <= room.height, f
        assert w_lo - 1e-6 <= f.width_px <= w_hi + 1e-6, f
        # The box is the rotated face box's: at least the face's width, at most its diagonal.
        assert f.width_px - 0.5 <= w <= 2 * f.width_px, f
        assert abs(f.tilt_deg) <= C.HARD.tilt_big[1] + 1e-6
        assert 0.0 <= f.covered <= C.HARD.max_cover + 1e-6
        marks = np.array(f.landmarks)
        assert marks.shape == (5, 2)
        assert (marks[:, 0] >= x - 1).all() and (marks[:, 0] <= x + w + 1).all(), f
        assert (marks[:, 1] >= y - 1).all() and (marks[:, 1] <= y + h + 1).all(), f
        assert f.enrolled == (f.person in C.PEOPLE)
    assert sum(abs(f.tilt_deg) > 15 for f in room.faces) >= C.HARD.tilted[0] - 2
    assert any(f.covered > 0.05 for f in room.faces)
    assert any(not f.enrolled for f in room.faces)


def test_enrolled_faces_come_from_the_sources_given(room):
    enrolled, _ = C.default_sources()
    allowed = {str(p.resolve().relative_to(C.REPO)) for fs in enrolled.values() for p in fs}
    assert {f.source for f in room.faces if f.enrolled} <= allowed
    assert not any(
        "/train/" in f.source and f.enrolled and f.source not in allowed for f in room.faces
    )


def test_same_seed_same_room(room):
    enrolled, strangers = _sources()
    again = C.make_classroom(7, enrolled, strangers, "hard", size=SIZE)
    assert again.faces == room.faces
    assert again.jpeg == room.jpeg
    other = C.make_classroom(8, enrolled, strangers, "hard", size=SIZE)
    assert other.faces != room.faces


def test_match_on_the_truth_itself(room):
    pairs, missed, false = C.match([f.box for f in room.faces], room)
    assert sorted(t for _, t, _ in pairs) == list(range(len(room.faces)))
    assert all(d == t for d, t, _ in pairs)
    assert missed == [] and false == []


def test_match_counts_misses_false_and_duplicates():
    truth = [(0, 0, 10, 10), (100, 100, 20, 20)]
    detections = [
        (1, 1, 10, 10),
        (0, 0, 11, 11),
        (300, 300, 5, 5),
        {"x": 101, "y": 99, "w": 20, "h": 20},
    ]
    m = C.match(detections, truth)
    assert [(d, t) for d, t, _ in m.pairs] == [(1, 0), (3, 1)]
    assert m.missed == [] and m.false == [2] and m.duplicates == [0]
    pairs, missed, false = C.match([], truth)
    assert pairs == [] and missed == [0, 1] and false == []
