"""FaceNet on TensorFlow: the Keras model compiled once, on a GPU where TensorFlow sees one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attendance.face.facenet import compiled_facenet


class TensorFlowEngine:
    def __init__(self, weights: Path):
        import tensorflow as tf

        self._compiled = compiled_facenet(weights)
        self.device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"

    @classmethod
    def from_weights(cls, weights: Path) -> TensorFlowEngine:
        return cls(weights)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._compiled(batch).numpy()
