"""What DeepFace's detectors (Haar cascades, MTCNN) share here: they search the image with a
black margin, their overlapping boxes are merged, and their regions come back in the pixels of
the image without the margin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attendance.face.detectors.base import FaceRegion

# The margin on each side, as a fraction of the image's side.
BORDER = 0.25
# Two detections this much overlapped are one face (Haar's grouping sometimes keeps two boxes of
# different sizes on one face, and a box inside a face box is never another face).
OVERLAP = 0.5


def with_margin(image: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``image`` in a black margin, and the margin's width and height.

    The margin lets the detector find faces that fill or touch the frame (DeepFace does the
    same); it costs little on the downscaled copy."""
    import cv2

    pad_y, pad_x = int(image.shape[0] * BORDER), int(image.shape[1] * BORDER)
    padded = cv2.copyMakeBorder(
        image, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )
    return padded, pad_x, pad_y


def overlapping(regions: Sequence[Any], overlap: float = OVERLAP) -> set[int]:
    """Indices of DeepFace regions to drop: each overlaps a larger one by more than
    ``overlap`` of its own area (so it lies mostly inside it)."""
    order = sorted(range(len(regions)), key=lambda i: -(regions[i].w * regions[i].h))
    kept: list[int] = []
    dropped: set[int] = set()
    for i in order:
        a = regions[i]
        for j in kept:
            b = regions[j]
            iw = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
            ih = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
            if iw > 0 and ih > 0 and iw * ih > overlap * a.w * a.h:
                dropped.add(i)
                break
        else:
            kept.append(i)
    return dropped


def distinct(regions: Sequence[Any]) -> list[Any]:
    """The regions, in their order, without those lying mostly inside a larger one."""
    duplicates = overlapping(regions)
    return [r for i, r in enumerate(regions) if i not in duplicates]


def _shifted(point: tuple[int, int] | None, dx: int, dy: int) -> tuple[int, int] | None:
    return None if point is None else (point[0] - dx, point[1] - dy)


def unpadded(region: Any, pad_x: int, pad_y: int) -> FaceRegion:
    """A DeepFace ``FacialAreaRegion`` found with the margin, in the pixels of the image
    without it."""
    return FaceRegion(
        x0=region.x - pad_x,
        y0=region.y - pad_y,
        x1=region.x + region.w - pad_x,
        y1=region.y + region.h - pad_y,
        confidence=float(region.confidence or 0.0),
        left_eye=_shifted(region.left_eye, pad_x, pad_y),
        right_eye=_shifted(region.right_eye, pad_x, pad_y),
    )
