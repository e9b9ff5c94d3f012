"""CenterFace's refining pass on real photos: a face that is small on the detection copy is
found again on the photo itself, and its landmarks come out where a detection at the photo's
own size puts them, not where the coarse copy's few pixels put them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import DEEPFACE_HOME, FACES_DIR

pytestmark = [pytest.mark.slow, pytest.mark.model]

GROUPS = FACES_DIR.parent / "groups"
WEIGHTS = DEEPFACE_HOME / ".deepface" / "weights" / "centerface.onnx"


def detector(max_side: int, refine_px: int):
    from attendance.face.detect import FaceDetector

    return FaceDetector(
        "centerface",
        max_side,
        32,
        centerface_weights=WEIGHTS,
        min_confidence=0.4,
        precision="f32",
        refine_px=refine_px,
    )


def shifts(found, reference) -> np.ndarray:
    """Per face of ``found``: how far its landmarks are from the same face's in ``reference``,
    in face widths."""
    out = []
    for face in found:
        cx, cy = face.box.x + face.box.w / 2, face.box.y + face.box.h / 2
        same = min(
            reference,
            key=lambda r: (r.box.x + r.box.w / 2 - cx) ** 2 + (r.box.y + r.box.h / 2 - cy) ** 2,
        )
        out.append(np.linalg.norm(face.landmarks - same.landmarks, axis=1).max() / same.box.w)
    return np.array(out)


@pytest.fixture(scope="module")
def photo():
    # 1280 px, 6 faces of about 100 x 130 px: on a 320 px copy they are 25 x 33 px.
    return cv2.imread(str(GROUPS / "t1.jpg"), cv2.IMREAD_COLOR)


def test_refined_landmarks_of_small_faces_are_those_found_at_the_photos_size(photo):
    at_size = detector(photo.shape[1], 0).detect(photo)
    coarse = detector(320, 0).detect(photo)
    refined = detector(320, 64).detect(photo)
    assert len(at_size) == len(coarse) == len(refined) >= 5
    before, after = shifts(coarse, at_size), shifts(refined, at_size)
    assert np.median(after) < np.median(before), (before, after)
    assert after.max() < 0.1, after
    # The faces are still those the coarse pass found, at the same places.
    assert [f.confidence for f in refined] == [f.confidence for f in coarse]
    moved = shifts(refined, coarse)
    assert (moved > 0).all() and moved.max() < 0.25, moved


def test_a_face_the_photo_does_not_show_again_stays_as_the_coarse_pass_found_it():
    from attendance.face.detectors.base import DetectorOptions, FaceRegion
    from attendance.face.detectors.centerface import CenterFaceDetector

    network = CenterFaceDetector(
        DetectorOptions(centerface_weights=WEIGHTS, precision="f32", refine_px=48)
    )
    blank = np.zeros((1200, 1600, 3), np.uint8)
    marks = np.array([[10, 10], [20, 10], [15, 15], [11, 20], [19, 20]], np.float32)
    regions = [FaceRegion(5.0, 5.0, 25.0, 27.0, 0.9, landmarks=marks)]
    assert network.refine(blank, regions, 0.5) == regions
    # Not downscaled, or not small: nothing to refine.
    assert network.refine(blank, regions, 1.0) == regions
    big = [FaceRegion(5.0, 5.0, 80.0, 90.0, 0.9, landmarks=marks)]
    assert network.refine(blank, big, 0.5) == big


def test_refining_batches_of_any_size_give_what_one_at_a_time_gives(photo):
    from attendance.face.detectors.centerface import REFINE_BATCHES, CenterFace

    network = CenterFace(WEIGHTS, "f32")
    found = network(photo, 0.4)
    boxes = np.concatenate([found.boxes] * 3)  # more than the largest batch
    assert len(boxes) > REFINE_BATCHES[-1]
    together = network.refine(photo, boxes, 48, 0.3)
    for box, got in zip(boxes, together):
        [alone] = network.refine(photo, box[None], 48, 0.3)
        assert got is not None and alone is not None
        np.testing.assert_allclose(got[1], alone[1], atol=0.05)
