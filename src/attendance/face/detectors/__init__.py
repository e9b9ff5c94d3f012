"""The face detectors, one module each, by the name ATTENDANCE_DETECTOR gives them."""

from __future__ import annotations

from collections.abc import Callable

from attendance.face.detectors.base import Detector, DetectorOptions, FaceRegion
from attendance.face.detectors.centerface import CenterFaceDetector
from attendance.face.detectors.mtcnn import MtcnnDetector
from attendance.face.detectors.opencv import HaarDetector

DETECTORS: dict[str, Callable[[DetectorOptions], Detector]] = {
    CenterFaceDetector.name: CenterFaceDetector,
    HaarDetector.name: HaarDetector,
    MtcnnDetector.name: MtcnnDetector,
}

__all__ = ["DETECTORS", "Detector", "DetectorOptions", "FaceRegion", "build_detector"]


def build_detector(name: str, options: DetectorOptions) -> Detector:
    try:
        make = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown face detector {name!r}: one of {sorted(DETECTORS)}") from None
    return make(options)
