"""FaceNet converted to ONNX (attendance.face.onnx_export), on ONNX Runtime's CPU kernels: faster
than TensorFlow on a CPU, the more so for few faces (docs/performance.md, "Embedding: FaceNet as
ONNX, on OpenVINO")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attendance.face.facenet import converted_graph


class OnnxRuntimeEngine:
    device = "CPU"

    def __init__(self, graph: Path):
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def from_weights(cls, weights: Path) -> OnnxRuntimeEngine:
        return cls(converted_graph(weights))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch})[0]
