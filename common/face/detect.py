"""Find faces on a downscaled copy of the photo, then crop and align them from the original."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from common.schemas import Box

FACENET_INPUT = (160, 160)
BORDER = 0.25
# The opencv eye search runs on the top EYE_REGION of the face box, on a copy no wider than
# EYE_SEARCH_PX.
EYE_SEARCH_PX = 200
EYE_REGION = 0.6
# Two detections this much overlapped are one face (Haar's grouping sometimes keeps two boxes of
# different sizes on one face, and a box inside a face box is never another face).
OVERLAP = 0.5


def _overlapping(regions, overlap: float = OVERLAP) -> set[int]:
    """Indices of detections to drop: each overlaps a larger one by more than ``overlap`` of its
    own area (so it lies mostly inside it)."""
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


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    confidence: float
    pixels: np.ndarray  # (160, 160, 3) float32 in [0, 1], BGR, what FaceNet expects


class FaceDetector:
    def __init__(self, backend: str, detect_max_side: int, min_face_px: int,
                 scale_step: float = 1.25, min_neighbors: int = 3):
        from deepface.modules import modeling

        self.backend = backend
        self.detect_max_side = detect_max_side
        self.min_face_px = min_face_px
        self.scale_step = scale_step
        self.min_neighbors = min_neighbors
        self._detector = modeling.build_model(task="face_detector", model_name=backend)
        self._pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                        thread_name_prefix="faces")
        self._local = threading.local()

    def _regions(self, img: np.ndarray, min_size: float) -> list:
        """The detector's face regions on ``img``, none smaller than ``min_size`` pixels; for
        opencv without their eyes yet (``_find_eyes`` adds them, face by face).

        For opencv this is DeepFace's OpenCvClient.detect_faces (same cascade, same eye search)
        with a cheaper scan: it skips the window sizes below ``min_size``, whose faces would be
        dropped anyway, and steps the window size by ``scale_step`` (DeepFace: 1.1) while asking
        for ``min_neighbors`` overlapping hits (DeepFace: 10). Fewer window sizes give each face
        fewer hits, so the two move together: 1.25 with 3 scans ~2.6x faster than 1.1 with 10 and
        finds the same faces in the group photos (docs/performance.md, "Detection").
        """
        if self.backend != "opencv":
            return self._detector.detect_faces(img)
        from deepface.models.Detector import FacialAreaRegion

        side = max(1, int(min_size))
        try:
            found, _, scores = self._detector.model["face_detector"].detectMultiScale3(
                img, self.scale_step, self.min_neighbors, minSize=(side, side),
                outputRejectLevels=True,
            )
        except Exception:  # DeepFace ignores cascade errors the same way
            return []
        return [FacialAreaRegion(x=int(x), y=int(y), w=int(w), h=int(h),
                                 confidence=(100 - score) / 100)
                for (x, y, w, h), score in zip(found, scores)]

    def _eye_finder(self):
        """This thread's DeepFace opencv client: a cascade must not run in two threads at once."""
        finder = getattr(self._local, "finder", None)
        if finder is None:
            from deepface.models.face_detection.OpenCv import OpenCvClient

            finder = self._local.finder = OpenCvClient()
        return finder

    def _find_eyes(self, img: np.ndarray, region):
        """``region`` with the eye centres DeepFace's opencv eye search finds in it."""
        import cv2

        x, y, w, h = region.x, region.y, region.w, region.h
        # Eyes lie in the upper part of a face box: the search skips the mouth and chin, which
        # costs less and stops a mouth being taken for an eye.
        crop = img[y:int(y + h * EYE_REGION), x:x + w]
        # Eyes are searched on the face at most EYE_SEARCH_PX wide: on a 600 px face the eye
        # cascade took 170 ms, for eye centres that then only set the rotation angle.
        k = min(1.0, EYE_SEARCH_PX / max(1, w))
        if k < 1.0:
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * k)),
                                     max(1, round(crop.shape[0] * k))),
                              interpolation=cv2.INTER_AREA)
        left_eye, right_eye = self._eye_finder().find_eyes(img=crop)
        if left_eye is not None:
            left_eye = (int(x + left_eye[0] / k), int(y + left_eye[1] / k))
        if right_eye is not None:
            right_eye = (int(x + right_eye[0] / k), int(y + right_eye[1] / k))
        return replace(region, left_eye=left_eye, right_eye=right_eye)

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]:
        import cv2

        height, width = bgr.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        small = bgr if scale == 1.0 else cv2.resize(
            bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
        # A black margin lets the detector find faces that fill or touch the frame (DeepFace does
        # the same); it costs little on the downscaled copy.
        pad_y, pad_x = int(small.shape[0] * BORDER), int(small.shape[1] * BORDER)
        padded = cv2.copyMakeBorder(small, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT,
                                    value=(0, 0, 0))
        regions = self._regions(padded, min_size=self.min_face_px * scale)
        duplicates = _overlapping(regions)
        kept = [r for i, r in enumerate(regions) if i not in duplicates]

        def finish(region) -> DetectedFace | None:
            if self.backend == "opencv":
                region = self._find_eyes(padded, region)
            return self._aligned(bgr, region, scale, pad_x, pad_y)

        # The cascade scan uses every core, but one face's eye search and alignment is too small
        # to: the faces are finished side by side (OpenCV releases the GIL).
        return [f for f in self._pool.map(finish, kept) if f is not None]

    def _aligned(self, bgr: np.ndarray, region, scale: float, pad_x: int,
                 pad_y: int) -> DetectedFace | None:
        """The face at ``region`` (found on the padded, downscaled copy), cropped and aligned
        from the original photo and preprocessed for FaceNet; None if it is too small."""
        from deepface.models.Detector import FacialAreaRegion
        from deepface.modules import detection, preprocessing

        height, width = bgr.shape[:2]

        def up(v, pad=0):
            return None if v is None else int(round((v - pad) / scale))

        def up_point(p):
            return None if p is None else (up(p[0], pad_x), up(p[1], pad_y))

        x0, y0 = up(region.x, pad_x), up(region.y, pad_y)
        x1, y1 = up(region.x + region.w, pad_x), up(region.y + region.h, pad_y)
        x, y = max(0, x0), max(0, y0)
        w, h = min(width, x1) - x, min(height, y1) - y
        if min(w, h) < self.min_face_px:
            return None
        area = FacialAreaRegion(
            x=x, y=y, w=w, h=h,
            left_eye=up_point(region.left_eye), right_eye=up_point(region.right_eye),
            confidence=region.confidence,
        )
        # Align on the original photo: DeepFace rotates a padded sub-image around the face.
        aligned = detection.extract_face(
            facial_area=area, img=bgr, align=True, expand_percentage=0,
            width_border=0, height_border=0, detector_backend=self.backend,
        )
        crop = aligned.img
        if crop.size == 0:
            return None
        # Same preprocessing as DeepFace.represent: [0, 1] floats, letterboxed to 160x160.
        pixels = preprocessing.resize_image(
            img=crop.astype(np.float32) / 255.0, target_size=FACENET_INPUT
        )[0]
        return DetectedFace(Box(x=x, y=y, w=w, h=h), float(region.confidence or 0.0), pixels)
