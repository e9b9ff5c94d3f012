"""Whether a face found with landmarks can be recognised: big enough, turned little enough and
sharp enough. A face that is not is reported with the reason, never matched."""

from __future__ import annotations

import numpy as np

TOO_SMALL = "too small to recognise"
TURNED = "turned too far away to recognise"
BLURRED = "too blurred to recognise"
# How far a face may be turned (the nose's offset from the eyes' midpoint along the eye line, in
# eye distances: 0 frontal, 0.5 with the nose in line with an eye, more in profile) and how sharp
# it must be (the variance of the Laplacian of its 160x160 crop) to be matched at all, and to be
# enrolled. README, "Enrollment photos", has the measurements behind them.
MAX_TURN, ENROLL_MAX_TURN = 1.0, 0.6
MIN_SHARPNESS, ENROLL_MIN_SHARPNESS = 6.0, 10.0


def turn_of(landmarks: np.ndarray) -> float:
    """How far the head is turned: the nose tip's offset from the eyes' midpoint, along the
    line of the eyes, in eye distances (0 frontal, 0.5 with the nose in line with an eye)."""
    left, right, nose = (np.asarray(p, np.float64) for p in landmarks[:3])
    across = right - left
    distance = float(np.linalg.norm(across))
    if distance < 1e-6:
        return float("inf")
    return float(np.dot(nose - (left + right) / 2, across / distance) / distance)


def sharpness_of(pixels: np.ndarray) -> float:
    """The variance of the Laplacian of a [0, 1] BGR crop's grey levels."""
    import cv2

    gray = cv2.cvtColor((pixels * 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def unrecognisable(turn: float, sharpness: float) -> str | None:
    """Why a face turned by ``turn`` with a crop this sharp cannot be matched, or None."""
    if abs(turn) > MAX_TURN:
        return TURNED
    if sharpness < MIN_SHARPNESS:
        return BLURRED
    return None
