"""Haar cascades (OpenCV), as DeepFace's opencv detector runs them, with a cheaper scan: face
boxes, then each face's eye centres from DeepFace's eye search.

The scan is DeepFace's OpenCvClient.detect_faces (same cascade, same eye search) except that it
skips the window sizes below the smallest face kept, whose faces would be dropped anyway, and
steps the window size by ``scale_step`` (DeepFace: 1.1) while asking for ``min_neighbors``
overlapping hits (DeepFace: 10). Fewer window sizes give each face fewer hits, so the two move
together: the coarser scan is faster and finds the same faces in the group photos
(docs/performance.md, "Detection").
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from attendance.face.detectors.base import DetectorOptions, FaceRegion
from attendance.face.detectors.deepface_regions import distinct, unpadded, with_margin

# The eye search runs on the top EYE_REGION of the face box, on a copy no wider than
# EYE_SEARCH_PX.
EYE_SEARCH_PX = 200
EYE_REGION = 0.6


class HaarDetector:
    name = "opencv"
    box_scale = 1.0

    def __init__(self, options: DetectorOptions):
        from deepface.modules import modeling

        self.scale_step = options.scale_step
        self.min_neighbors = options.min_neighbors
        self._cascade = modeling.build_model(task="face_detector", model_name=self.name)
        # The cascade scan uses every core, but one face's eye search is too small to: the faces
        # are searched side by side (OpenCV releases the GIL).
        self._pool = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="eyes"
        )
        self._local = threading.local()

    def find(self, image: np.ndarray, min_size: float) -> list[FaceRegion]:
        padded, pad_x, pad_y = with_margin(image)
        regions = distinct(self._scan(padded, min_size))
        with_eyes = self._pool.map(lambda region: self._find_eyes(padded, region), regions)
        return [unpadded(r, pad_x, pad_y) for r in with_eyes]

    def _scan(self, img: np.ndarray, min_size: float) -> list[Any]:
        """The cascade's face regions on ``img``, none smaller than ``min_size`` pixels, as
        DeepFace ``FacialAreaRegion`` objects without their eyes yet."""
        from deepface.models.Detector import FacialAreaRegion

        side = max(1, int(min_size))
        try:
            found, _, scores = self._cascade.model["face_detector"].detectMultiScale3(
                img,
                self.scale_step,
                self.min_neighbors,
                minSize=(side, side),
                outputRejectLevels=True,
            )
        except Exception:  # DeepFace ignores cascade errors the same way
            return []
        return [
            FacialAreaRegion(x=int(x), y=int(y), w=int(w), h=int(h), confidence=(100 - score) / 100)
            for (x, y, w, h), score in zip(found, scores)
        ]

    def _eye_finder(self) -> Any:
        """This thread's DeepFace opencv client: a cascade must not run in two threads at once."""
        finder = getattr(self._local, "finder", None)
        if finder is None:
            from deepface.models.face_detection.OpenCv import OpenCvClient

            finder = self._local.finder = OpenCvClient()
        return finder

    def _find_eyes(self, img: np.ndarray, region: Any) -> Any:
        """``region`` with the eye centres DeepFace's opencv eye search finds in it."""
        import cv2

        x, y, w, h = region.x, region.y, region.w, region.h
        # Eyes lie in the upper part of a face box: the search skips the mouth and chin, which
        # costs less and stops a mouth being taken for an eye.
        crop = img[y : int(y + h * EYE_REGION), x : x + w]
        # Eyes are searched on the face at most EYE_SEARCH_PX wide: on a large face the eye
        # cascade is slow, for eye centres that then only set the rotation angle
        # (docs/performance.md, "Detection").
        k = min(1.0, EYE_SEARCH_PX / max(1, w))
        if k < 1.0:
            crop = cv2.resize(
                crop,
                (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))),
                interpolation=cv2.INTER_AREA,
            )
        left_eye, right_eye = self._eye_finder().find_eyes(img=crop)
        if left_eye is not None:
            left_eye = (int(x + left_eye[0] / k), int(y + left_eye[1] / k))
        if right_eye is not None:
            right_eye = (int(x + right_eye[0] / k), int(y + right_eye[1] / k))
        return replace(region, left_eye=left_eye, right_eye=right_eye)
