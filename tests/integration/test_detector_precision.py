"""CenterFace on OpenVINO, in the CPU's fastest precision and in float32, on real group photos:
the precision a detector keeps must find the same faces as float32, with the same boxes and
landmarks, on photos other than the one it checked itself on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import DEEPFACE_HOME, FACES_DIR

pytestmark = [pytest.mark.slow, pytest.mark.model]

GROUPS = FACES_DIR.parent / "groups"
WEIGHTS = DEEPFACE_HOME / ".deepface" / "weights" / "centerface.onnx"


@pytest.fixture(scope="module")
def networks():
    from attendance.face.detectors.centerface import CenterFace

    return CenterFace(WEIGHTS), CenterFace(WEIGHTS, "f32")


def test_the_chosen_precision_is_named_and_float32_is_honoured(networks):
    chosen, reference = networks
    assert chosen.precision in ("bf16", "f32")
    assert reference.precision == "f32"


def confident(found, above: float):
    from attendance.face.detectors.centerface import Detections

    keep = found.scores > above
    return Detections(found.boxes[keep], found.scores[keep], found.landmarks[keep])


@pytest.mark.parametrize("photo", [GROUPS / "t1.jpg", FACES_DIR / "couple.jpg"])
def test_the_chosen_precision_finds_what_float32_finds(networks, photo):
    from attendance.face.detect import downscaled
    from attendance.face.detectors.centerface import agree

    chosen, reference = networks
    small, _ = downscaled(cv2.imread(str(photo), cv2.IMREAD_COLOR), 1600)
    expected = reference(small, 0.3)
    assert len(expected.boxes) >= 2
    # Compared above a cut that no face of these photos is near (a face at a cut may fall
    # either side of it).
    cut = 0.5
    assert not (np.abs(expected.scores - cut) < 0.02).any(), expected.scores
    assert agree(confident(expected, cut), confident(chosen(small, 0.3), cut)) is None


def test_a_detector_warms_up_at_the_sizes_of_phone_photos(networks):
    chosen, _ = networks
    chosen.warm_up([(1200, 1600), (1600, 1200)])
    assert len(chosen(np.zeros((1200, 1600, 3), np.uint8), 0.5).boxes) == 0
