"""The INT8 model's accuracy rule (attendance.face.quantize) on small made-up embeddings: the
decisive distances the matcher uses, the margins to the threshold, and when a precision passes."""

from __future__ import annotations

import numpy as np

from attendance.face.quantize import (
    MARGIN_FRACTION,
    Margins,
    decisions,
    decisive_distances,
    margins,
    passes,
    verdict,
    worst_share,
)

THRESHOLD = 0.45


def unit(angle_degrees: float) -> np.ndarray:
    a = np.radians(angle_degrees)
    return np.array([np.cos(a), np.sin(a), 0.0], dtype=np.float32)


STRANGER = np.array([0.0, 0.0, 1.0], dtype=np.float32)


# Two people, two photos each, far apart; a face of "a", a face of "b" and a stranger.
GALLERY = np.stack([unit(0), unit(10), unit(90), unit(100)])
PEOPLE = np.array(["a", "a", "b", "b"])
FACES = np.stack([unit(5), unit(95), STRANGER])
WHOSE = np.array(["a", "b", ""])


def test_the_decisive_distance_is_the_second_nearest_of_a_persons_photos():
    decisive, people = decisive_distances(FACES, GALLERY, PEOPLE, min_photos=2)
    assert list(people) == ["a", "b"]
    # A face at 5 degrees: 5 degrees from both of a's photos.
    assert np.isclose(decisive[0, 0], 1 - np.cos(np.radians(5)))
    one, _ = decisive_distances(FACES, GALLERY, PEOPLE, min_photos=1)
    assert np.all(one <= decisive)
    assert decisions(decisive, people, THRESHOLD) == ["a", "b", ""]


def test_margins_are_genuine_below_and_impostors_above_the_threshold():
    decisive, people = decisive_distances(FACES, GALLERY, PEOPLE, min_photos=2)
    m = margins(decisive, people, WHOSE, THRESHOLD)
    assert len(m.genuine) == 2 and np.all(m.genuine > 0)
    assert len(m.impostor) == 3 and np.all(m.impostor > 0)
    assert np.isclose(m.smallest, min(m.genuine.min(), m.impostor.min()))


def test_a_decision_may_keep_no_less_than_its_share_of_margin():
    reference = Margins(np.array([0.10, 0.02]), np.array([0.30]))
    small = Margins(np.array([0.09, 0.015]), np.array([0.31]))  # 0.25 of the 0.02 margin
    assert np.isclose(worst_share(reference, small), 0.25)
    assert passes(worst_share(reference, small), flips=0)
    large = Margins(np.array([0.10, 0.005]), np.array([0.30]))  # 0.75 of it
    assert not passes(worst_share(reference, large), flips=0)
    assert not passes(0.0, flips=1)
    assert passes(MARGIN_FRACTION * 0.99, 0) and not passes(MARGIN_FRACTION, 0)


def test_the_verdict_flags_a_stranger_accepted_or_a_student_lost():
    same = verdict("x", (GALLERY, FACES), (GALLERY, FACES), PEOPLE, WHOSE, THRESHOLD, 2)
    assert same.passed and same.flips == 0 and same.worst_shift < 1e-6
    assert same.worst_distance < 1e-6
    # The stranger moved next to a: it would be let in as a.
    moved = FACES.copy()
    moved[2] = unit(6)
    flipped = verdict("x", (GALLERY, FACES), (GALLERY, moved), PEOPLE, WHOSE, THRESHOLD, 2)
    assert flipped.flips == 2  # with the gallery in either precision
    assert not flipped.passed
    # Slightly moved, far from the threshold: passes, its shift measured.
    nudged = np.stack([unit(6), unit(94), STRANGER])
    ok = verdict("x", (GALLERY, FACES), (GALLERY, nudged), PEOPLE, WHOSE, THRESHOLD, 2)
    assert ok.passed and 0 < ok.worst_shift < 0.05
