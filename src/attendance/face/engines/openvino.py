"""The same ONNX graph compiled by OpenVINO for this CPU.

Where the CPU computes in bfloat16 (AVX512_BF16, AMX), OpenVINO does by default: faster than ONNX
Runtime, with embeddings within MAX_COSINE_DISTANCE of TensorFlow's (docs/performance.md,
"Embedding: FaceNet as ONNX, on OpenVINO"). If a check on sample faces finds them farther from
ONNX Runtime's, it compiles in float32 instead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from attendance.face.engines.onnxruntime import OnnxRuntimeEngine
from attendance.face.facenet import MAX_COSINE_DISTANCE, converted_graph, cosine_distances

log = logging.getLogger(__name__)

DEFAULT = {"PERFORMANCE_HINT": "LATENCY"}
FLOAT32 = {**DEFAULT, "INFERENCE_PRECISION_HINT": "f32"}


class OpenVinoEngine:
    device = "CPU"

    def __init__(self, graph: Path):
        import openvino as ov

        self._core = ov.Core()
        self._graph = graph
        self._predict = self._compiled(DEFAULT)
        sample = np.random.default_rng(0).random((2, 160, 160, 3), dtype=np.float32)
        reference = OnnxRuntimeEngine(graph).predict(sample)
        worst = float(cosine_distances(self._predict(sample), reference).max())
        if worst > MAX_COSINE_DISTANCE:
            log.warning(
                "OpenVINO's default precision moved embeddings by %.1e; using float32", worst
            )
            self._predict = self._compiled(FLOAT32)

    @classmethod
    def from_weights(cls, weights: Path) -> OpenVinoEngine:
        return cls(converted_graph(weights))

    def _compiled(self, config: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
        request = self._core.compile_model(str(self._graph), "CPU", config).create_infer_request()

        def predict(batch: np.ndarray) -> np.ndarray:
            return request.infer({0: batch})[0].copy()

        return predict

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._predict(batch)
