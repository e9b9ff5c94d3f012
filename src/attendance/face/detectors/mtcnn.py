"""MTCNN, as DeepFace builds it: face boxes with the two eyes."""

from __future__ import annotations

import numpy as np

from attendance.face.detectors.base import DetectorOptions, FaceRegion
from attendance.face.detectors.deepface_regions import distinct, unpadded, with_margin


class MtcnnDetector:
    name = "mtcnn"
    box_scale = 1.0

    def __init__(self, options: DetectorOptions):
        from deepface.modules import modeling

        self._model = modeling.build_model(task="face_detector", model_name=self.name)

    def find(self, image: np.ndarray, min_size: float) -> list[FaceRegion]:
        # mtcnn 1.0.0 finds no face at all with a larger minimum (docs/performance.md,
        # "Detection"): min_size is not passed on.
        padded, pad_x, pad_y = with_margin(image)
        regions = distinct(self._model.detect_faces(padded))
        return [unpadded(r, pad_x, pad_y) for r in regions]
