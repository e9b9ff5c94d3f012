"""What a face detector hands the facade (attendance.face.detect): the faces it finds on the
image it is given, in that image's pixels, with five landmarks or two eye centres where it has
them. Downscaling the photo, aligning the faces and judging them are the facade's work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class FaceRegion:
    # The box's corners, as the detector computed them (ints for DeepFace's detectors, float32
    # for CenterFace): the facade scales them to the photo with the detector's own precision.
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float
    # (5, 2) float32 (x, y): the eyes, the nose tip and the mouth corners; a face that has them
    # is aligned on them, one without by DeepFace's rotation on its eyes.
    landmarks: np.ndarray | None = None
    left_eye: tuple[int, int] | None = None  # the person's left eye, as DeepFace names them
    right_eye: tuple[int, int] | None = None


@dataclass(frozen=True)
class DetectorOptions:
    """Every backend's tuning; each reads what concerns it."""

    scale_step: float = 1.25  # Haar: how much the window grows from one scan to the next
    min_neighbors: int = 3  # Haar: overlapping hits a face needs
    centerface_weights: Path | None = None
    min_confidence: float = 0.5  # CenterFace: the lowest heatmap score taken for a face
    # CenterFace: faces narrower than this on the detection copy are found again on the photo,
    # drawn this wide (0: never).
    refine_px: int = 0
    precision: str = (
        "f32"  # CenterFace: "f32", "bf16" or "auto" (attendance.face.detectors.centerface)
    )


class Detector(Protocol):
    name: str  # the ATTENDANCE_DETECTOR value, also DeepFace's name for the backend
    # How much wider a Haar box is than this detector's for the same face: min_face_px is in
    # Haar's terms, the boxes it was chosen on.
    box_scale: float

    def find(self, image: np.ndarray, min_size: float) -> list[FaceRegion]:
        """The faces on ``image`` (BGR uint8). ``min_size`` is the smallest face, in pixels,
        the facade will keep: a detector may skip the work of finding smaller ones."""
        ...

    # Optional, looked up by the facade: ``warm_up(sizes)`` (infer once at each size when the
    # worker starts) and ``refine(photo, regions, scale)`` (the regions found on the copy
    # downscaled by ``scale``, placed again on the photo itself; CenterFace's refining pass).
