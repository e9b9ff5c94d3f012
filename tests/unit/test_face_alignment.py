"""CenterFace's decoding, the landmark alignment, DeepFace's regions and the backend registries:
no weights, no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attendance.face.detect import TEMPLATE_160, align_by_landmarks, downscaled, similarity
from attendance.face.detectors.centerface import (
    REFINE_SIDE,
    CenterFace,
    Detections,
    agree,
    crop_around,
    nms,
)


def rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


@pytest.mark.parametrize(
    "degrees, scale, shift",
    [(0, 1, (0, 0)), (30, 2.5, (300, -40)), (-35, 0.3, (12, 900)), (90, 1.7, (5, 5))],
)
def test_similarity_recovers_a_known_transform(degrees, scale, shift):
    src = np.random.default_rng(1).uniform(0, 200, (5, 2))
    dst = scale * src @ rotation(degrees).T + shift
    matrix = similarity(src, dst)
    assert np.allclose(matrix[:, :2], scale * rotation(degrees), atol=1e-9)
    assert np.allclose(matrix[:, 2], shift, atol=1e-7)


def test_similarity_never_mirrors():
    src = TEMPLATE_160.astype(np.float64)
    mirrored = src * [-1, 1]
    matrix = similarity(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def draw_face(size: int, landmarks: np.ndarray, radius: int) -> np.ndarray:
    """A grey image with a bright square on each landmark."""
    img = np.full((size, size, 3), 60, np.uint8)
    for x, y in landmarks.round().astype(int):
        img[y - radius : y + radius + 1, x - radius : x + radius + 1] = (255, 255, 255)
    return img


@pytest.mark.parametrize("degrees, scale", [(0, 1.0), (25, 3.0), (-35, 0.8), (10, 9.0)])
def test_a_tilted_face_at_any_size_comes_out_upright_on_the_template(degrees, scale):
    centre = np.array([500.0, 500.0])
    marks = (TEMPLATE_160 - 80) * scale @ rotation(degrees).T + centre
    crop = align_by_landmarks(draw_face(1000, marks, max(2, round(2 * scale))), marks)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.float32
    assert 0.0 <= crop.min() and crop.max() <= 1.0
    for x, y in TEMPLATE_160.round().astype(int):
        assert crop[y - 1 : y + 2, x - 1 : x + 2].max() > 0.6, (degrees, scale, x, y)


def test_degenerate_landmarks_give_no_crop():
    assert align_by_landmarks(np.zeros((50, 50, 3), np.uint8), np.full((5, 2), 20.0)) is None


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32
    )
    scores = np.array([0.6, 0.9, 0.5, 0.4], np.float32)
    assert nms(boxes, scores).tolist() == [1, 2]


def faces(*boxes: tuple[float, float, float, float], score: float = 0.9) -> Detections:
    """Detections of these boxes, each with its landmarks at fixed places inside it."""
    b = np.array(boxes, np.float32).reshape(-1, 4)
    rel = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]], np.float32)
    size = (b[:, 2:] - b[:, :2])[:, None, :]
    return Detections(b, np.full(len(b), score, np.float32), b[:, None, :2] + rel * size)


def test_the_same_faces_agree_and_a_missing_or_moved_one_does_not():
    reference = faces((10, 10, 50, 60), (100, 20, 140, 70))
    assert agree(reference, reference) is None
    nudged = faces((11, 10, 51, 61), (100, 21, 140, 70))
    assert agree(reference, nudged) is None
    assert "1 faces instead of 2" in agree(reference, faces((10, 10, 50, 60)))
    assert "overlaps" in agree(reference, faces((10, 10, 50, 60), (120, 20, 160, 70)))
    lower = faces((10, 10, 50, 60), (100, 20, 140, 70), score=0.8)
    assert "confidence" in agree(reference, lower)
    moved = faces((10, 10, 50, 60), (100, 20, 140, 70))
    moved.landmarks[1, 2] += (4.0, 0.0)  # the nose, a tenth of the face's width
    assert "landmarks" in agree(reference, moved)


@pytest.mark.parametrize("size", [(3000, 4000), (1537, 2049), (3024, 4032), (900, 700)])
def test_a_photo_is_downscaled_to_the_size_asked_whatever_its_own(size):
    rng = np.random.default_rng(0)
    photo = np.repeat(
        np.repeat(
            rng.integers(0, 255, (size[0] // 8 + 1, size[1] // 8 + 1, 3), dtype=np.uint8), 8, 0
        ),
        8,
        1,
    )[: size[0], : size[1]]
    small, scale = downscaled(photo, 1600)
    assert max(small.shape[:2]) == min(1600, max(size))
    assert scale == pytest.approx(min(1.0, 1600 / max(size)))
    assert small.shape[:2] == (round(size[0] * scale), round(size[1] * scale))
    # The halving steps average like one area resize does: the same picture.
    import cv2

    direct = cv2.resize(photo, small.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - direct).mean() < 2.0


@pytest.mark.parametrize(
    "box, face_px",
    [
        ((1000.0, 800.0, 1100.0, 930.0), 48),  # shrunk: the face is drawn 48 px tall
        ((5.0, 3.0, 45.0, 50.0), 64),  # at the corner, and already small: never enlarged
        ((3950.0, 2900.0, 3998.0, 2999.0), 32),  # past the far edges
    ],
)
def test_a_refining_crop_maps_back_to_the_photo(box, face_px):
    photo = np.zeros((3000, 4000, 3), np.uint8)
    x0, y0, x1, y1 = box
    cx, cy = round((x0 + x1) / 2), round((y0 + y1) / 2)
    photo[cy - 1 : cy + 2, cx - 1 : cx + 2] = 255  # a bright dot at the face's centre
    crop = crop_around(photo, np.array(box), face_px)
    assert crop.pixels.shape == (REFINE_SIDE, REFINE_SIDE, 3)
    side = max(x1 - x0, y1 - y0)
    assert crop.zoom == pytest.approx(min(1.0, face_px / side), rel=0.02)
    ys, xs = np.nonzero(crop.pixels[:, :, 0] > 0)
    found = (crop.origin[0] + xs.mean() / crop.zoom, crop.origin[1] + ys.mean() / crop.zoom)
    assert found == pytest.approx((cx + 0.5, cy + 0.5), abs=1.5 / crop.zoom)
    # What lies beyond the photo is black, not a stretched edge.
    assert crop.pixels[0, 0].tolist() == [0, 0, 0]


def test_decode_places_a_face_where_the_heatmap_peaks():
    h, w = 20, 30
    heatmap = np.zeros((h, w), np.float32)
    heatmap[10, 5] = 0.9
    scale = np.full((2, h, w), np.log(40 / 4), np.float32)  # 40 x 40 px
    offset = np.zeros((2, h, w), np.float32)
    marks = np.zeros((10, h, w), np.float32)
    marks[:, 10, 5] = [0.3, 0.25, 0.3, 0.75, 0.55, 0.5, 0.8, 0.3, 0.8, 0.7]  # (dy, dx) x 5
    found = CenterFace.decode(heatmap, scale, offset, marks, 0.5, (h * 4, w * 4))
    assert found.scores.tolist() == pytest.approx([0.9])
    cx, cy = (5 + 0.5) * 4, (10 + 0.5) * 4
    assert found.boxes[0] == pytest.approx([cx - 20, cy - 20, cx + 20, cy + 20])
    assert found.landmarks[0][0] == pytest.approx([cx - 20 + 0.25 * 40, cy - 20 + 0.3 * 40])
    assert CenterFace.decode(heatmap, scale, offset, marks, 0.95, (80, 120)).scores.size == 0


def test_turn_is_zero_facing_the_camera_and_grows_as_the_nose_moves_to_an_eye():
    from attendance.face.detect import turn_of

    frontal = TEMPLATE_160.astype(np.float64)
    assert abs(turn_of(frontal)) < 1e-6
    turned = frontal.copy()
    turned[2, 0] = frontal[1, 0]  # the nose at the right eye's x: a profile
    assert turn_of(turned) == pytest.approx(0.5, abs=1e-6)
    turned[2, 0] = frontal[0, 0]
    assert turn_of(turned) == pytest.approx(-0.5, abs=1e-6)
    # Rotating the whole face in the image plane does not change it.
    tilted = (frontal - 80) @ rotation(30).T + 80
    assert abs(turn_of(tilted)) < 1e-6


def test_a_blurred_crop_is_less_sharp():
    import cv2

    from attendance.face.detect import sharpness_of

    rng = np.random.default_rng(0)
    crop = rng.uniform(0, 1, (160, 160, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(crop, (0, 0), 3)
    assert sharpness_of(blurred) < sharpness_of(crop) / 10


def test_every_detector_and_engine_the_settings_allow_is_registered():
    from typing import get_args

    from attendance.config.settings import Settings
    from attendance.face.detectors import DETECTORS
    from attendance.face.engines import ENGINES

    assert set(DETECTORS) == set(get_args(Settings.model_fields["detector"].annotation))
    assert set(ENGINES) | {"auto"} == set(
        get_args(Settings.model_fields["embed_engine"].annotation)
    )


def test_an_unknown_backend_is_refused_by_name():
    from attendance.face.detectors import DetectorOptions, build_detector
    from attendance.face.engines import load_engine

    with pytest.raises(ValueError, match="unknown face detector 'nope'"):
        build_detector("nope", DetectorOptions())
    with pytest.raises(ValueError, match="unknown FaceNet engine 'nope'"):
        load_engine("nope", Path("facenet_weights.h5"))


def test_deepface_regions_come_back_without_the_margin_and_merged():
    from deepface.models.Detector import FacialAreaRegion

    from attendance.face.detectors.deepface_regions import distinct, unpadded, with_margin

    padded, pad_x, pad_y = with_margin(np.zeros((40, 80, 3), np.uint8))
    assert padded.shape == (60, 120, 3) and (pad_x, pad_y) == (20, 10)
    big = FacialAreaRegion(x=30, y=12, w=40, h=40, left_eye=(60, 25), confidence=0.9)
    inside = FacialAreaRegion(x=35, y=15, w=20, h=20, confidence=0.95)
    apart = FacialAreaRegion(x=80, y=12, w=20, h=20)
    assert distinct([inside, big, apart]) == [big, apart]
    region = unpadded(big, pad_x, pad_y)
    assert (region.x0, region.y0, region.x1, region.y1) == (10, 2, 50, 42)
    assert region.left_eye == (40, 15) and region.right_eye is None
    assert region.confidence == 0.9 and region.landmarks is None
    assert unpadded(apart, pad_x, pad_y).confidence == 0.0
