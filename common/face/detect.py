"""Find faces on a downscaled copy of the photo, then crop and align them from the original."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.schemas import Box

FACENET_INPUT = (160, 160)
BORDER = 0.25


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    confidence: float
    pixels: np.ndarray  # (160, 160, 3) float32 in [0, 1], BGR, what FaceNet expects


class FaceDetector:
    def __init__(self, backend: str, detect_max_side: int, min_face_px: int):
        from deepface.modules import modeling

        self.backend = backend
        self.detect_max_side = detect_max_side
        self.min_face_px = min_face_px
        self._detector = modeling.build_model(task="face_detector", model_name=backend)

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]:
        import cv2
        from deepface.models.Detector import FacialAreaRegion
        from deepface.modules import detection, preprocessing

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
        faces = []
        for region in self._detector.detect_faces(padded):
            def up(v, pad=0):
                return None if v is None else int(round((v - pad) / scale))

            def up_point(p):
                return None if p is None else (up(p[0], pad_x), up(p[1], pad_y))

            x0, y0 = up(region.x, pad_x), up(region.y, pad_y)
            x1, y1 = up(region.x + region.w, pad_x), up(region.y + region.h, pad_y)
            x, y = max(0, x0), max(0, y0)
            w, h = min(width, x1) - x, min(height, y1) - y
            if min(w, h) < self.min_face_px:
                continue
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
                continue
            # Same preprocessing as DeepFace.represent: [0, 1] floats, letterboxed to 160x160.
            pixels = preprocessing.resize_image(
                img=crop.astype(np.float32) / 255.0, target_size=FACENET_INPUT
            )[0]
            faces.append(DetectedFace(Box(x=x, y=y, w=w, h=h), float(region.confidence or 0.0),
                                      pixels))
        return faces
