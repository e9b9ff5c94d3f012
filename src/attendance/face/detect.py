"""Find faces on a downscaled copy of the photo, then crop and align them from the original.

The detector (attendance.face.detectors, by ATTENDANCE_DETECTOR) finds the faces on the copy
and, where it can, places those the copy left small again on the original (CenterFace's
refining pass, ATTENDANCE_DETECT_REFINE_PX); this facade does what is the same for all of them:
the downscaling, each face's box on the original photo, the alignment (attendance.face.align)
and, for faces with landmarks, whether they can be recognised at all
(attendance.face.quality)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attendance.domain.schemas import Box
from attendance.face.align import (
    FACENET_INPUT,
    TEMPLATE_160,
    TEMPLATE_SCALE,
    align_by_eyes,
    align_by_landmarks,
    similarity,
)
from attendance.face.detectors import DetectorOptions, FaceRegion, build_detector
from attendance.face.detectors.centerface import CNN_BOX_SCALE
from attendance.face.quality import (
    BLURRED,
    ENROLL_MAX_TURN,
    ENROLL_MIN_SHARPNESS,
    MAX_TURN,
    MIN_SHARPNESS,
    TOO_SMALL,
    TURNED,
    sharpness_of,
    turn_of,
    unrecognisable,
)

__all__ = [
    "BLURRED",
    "CNN_BOX_SCALE",
    "ENROLL_MAX_TURN",
    "ENROLL_MIN_SHARPNESS",
    "FACENET_INPUT",
    "MAX_TURN",
    "MIN_SHARPNESS",
    "TEMPLATE_160",
    "TEMPLATE_SCALE",
    "TOO_SMALL",
    "TURNED",
    "DetectedFace",
    "FaceDetector",
    "align_by_landmarks",
    "similarity",
    "sharpness_of",
    "turn_of",
]


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    confidence: float
    # (160, 160, 3) float32 in [0, 1], BGR, what FaceNet expects; None for a face found but
    # not identifiable (``reason`` says why): it is reported, never matched.
    pixels: np.ndarray | None
    landmarks: np.ndarray | None = None  # (5, 2) in the photo's pixels, CenterFace only
    reason: str | None = None
    turn: float = 0.0  # signed, in eye distances (CenterFace only)
    sharpness: float = float("inf")  # variance of the Laplacian of the crop (CenterFace only)

    @property
    def identifiable(self) -> bool:
        return self.pixels is not None


def downscaled(bgr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``bgr`` shrunk to at most ``max_side`` pixels a side, and the scale applied."""
    import cv2

    height, width = bgr.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return bgr, scale
    size = (round(width * scale), round(height * scale))
    # Area averaging by an exact factor of 2 is many times cheaper than by any other factor:
    # halve while the photo is at least twice the size wanted, then average the rest.
    while min(bgr.shape[0] / size[1], bgr.shape[1] / size[0]) >= 2.0:
        bgr = cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), scale


def _on_photo(value: Any, scale: float) -> int:
    """A coordinate on the downscaled copy, in the original photo's pixels."""
    return int(round(value / scale))


def _point_on_photo(point: tuple[int, int] | None, scale: float) -> tuple[int, int] | None:
    return None if point is None else (_on_photo(point[0], scale), _on_photo(point[1], scale))


class FaceDetector:
    def __init__(
        self,
        backend: str,
        detect_max_side: int,
        min_face_px: int,
        scale_step: float = 1.25,
        min_neighbors: int = 3,
        *,
        centerface_weights: Path | None = None,
        min_confidence: float = 0.5,
        precision: str = "auto",
        refine_px: int = 0,
    ):
        self.backend = backend
        self.detect_max_side = detect_max_side
        self.min_face_px = min_face_px
        self.scale_step = scale_step
        self.min_neighbors = min_neighbors
        self.min_confidence = min_confidence
        self._detector = build_detector(
            backend,
            DetectorOptions(
                scale_step=scale_step,
                min_neighbors=min_neighbors,
                centerface_weights=centerface_weights,
                min_confidence=min_confidence,
                precision=precision,
                refine_px=refine_px,
            ),
        )
        self._pool = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="faces"
        )

    @classmethod
    def from_settings(cls, settings: Any, backend: str | None = None) -> FaceDetector:
        """The detector the settings describe (``backend`` overrides theirs)."""
        return cls(
            backend or settings.detector,
            settings.detect_max_side,
            settings.min_face_px,
            settings.detect_scale_step,
            settings.detect_min_neighbors,
            centerface_weights=settings.centerface_path,
            min_confidence=settings.detect_min_confidence,
            precision=settings.detect_precision,
            refine_px=settings.detect_refine_px,
        )

    @property
    def precision(self) -> str | None:
        """The precision the detector's network computes in, where it has one."""
        return getattr(self._detector, "precision", None)

    def warm_up(self) -> None:
        """Pay at start what the detector's first photos would pay: the sizes of the copies of
        4:3 and 3:4 photos (a phone's) compiled."""
        warm_up = getattr(self._detector, "warm_up", None)
        if warm_up is not None:
            side, short = self.detect_max_side, round(self.detect_max_side * 3 / 4)
            warm_up([(short, side), (side, short)])

    def width(self, face: DetectedFace) -> float:
        """The face's width as min_face_px measures faces (Haar's looser boxes)."""
        return face.box.w * self._detector.box_scale

    def detect(
        self, bgr: np.ndarray, copy: tuple[np.ndarray, float] | None = None
    ) -> list[DetectedFace]:
        """The faces of ``bgr``; ``copy`` is its downscaled copy (and the scale) where the
        caller has made the one detection needs: downscaled(bgr, detect_max_side)."""
        small, scale = copy if copy is not None else downscaled(bgr, self.detect_max_side)
        regions = self._detector.find(small, min_size=self.min_face_px * scale)
        refine = getattr(self._detector, "refine", None)
        if refine is not None:
            regions = refine(bgr, regions, scale)
        # One face's alignment is too small to use every core: the faces are finished side by
        # side (OpenCV releases the GIL).
        finished = self._pool.map(lambda region: self._finished(bgr, region, scale), regions)
        return [face for face in finished if face is not None]

    def _finished(self, bgr: np.ndarray, region: FaceRegion, scale: float) -> DetectedFace | None:
        """The face at ``region`` (found on the copy downscaled by ``scale``), cropped and
        aligned from the original photo; None if there is nothing to report."""
        height, width = bgr.shape[:2]
        x0, y0 = max(0, _on_photo(region.x0, scale)), max(0, _on_photo(region.y0, scale))
        x1 = min(width, _on_photo(region.x1, scale))
        y1 = min(height, _on_photo(region.y1, scale))
        too_small = min(x1 - x0, y1 - y0) * self._detector.box_scale < self.min_face_px
        if region.landmarks is None:
            # DeepFace's detectors give no landmarks to judge a face by: a face too small to
            # recognise is left out.
            if too_small:
                return None
            pixels = align_by_eyes(
                bgr,
                (x0, y0, x1 - x0, y1 - y0),
                _point_on_photo(region.left_eye, scale),
                _point_on_photo(region.right_eye, scale),
                self.backend,
            )
            if pixels is None:
                return None
            return DetectedFace(Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0), region.confidence, pixels)
        box = Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0)
        landmarks = region.landmarks / scale
        if too_small:
            # Found, but too small for FaceNet to tell who it is: a face nobody can vouch for is
            # reported as such, neither matched nor left out.
            return DetectedFace(box, region.confidence, None, landmarks, TOO_SMALL)
        pixels = align_by_landmarks(bgr, landmarks)
        if pixels is None:
            return None
        turn, sharpness = turn_of(landmarks), sharpness_of(pixels)
        reason = unrecognisable(turn, sharpness)
        return DetectedFace(
            box, region.confidence, None if reason else pixels, landmarks, reason, turn, sharpness
        )
