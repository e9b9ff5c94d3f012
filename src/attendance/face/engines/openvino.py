"""The same ONNX graph compiled by OpenVINO for this CPU, in the precision
ATTENDANCE_EMBED_PRECISION names.

Where the CPU computes in bfloat16 (AVX512_BF16, AMX), OpenVINO does by default ("bf16"): faster
than ONNX Runtime, with embeddings within MAX_COSINE_DISTANCE of TensorFlow's (docs/performance.md,
"Embedding: FaceNet as ONNX, on OpenVINO"). If a check on sample faces finds them farther from
ONNX Runtime's, it compiles in float32 instead; a CPU without bfloat16 computes in float32 and
the engine says so. "int8" runs the model quantized by
attendance.face.quantize; "auto" does so only where that model passed its accuracy check and
passes the same check at start within MAX_INT8_COSINE_DISTANCE, else runs as "bf16"."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from attendance.domain.errors import ModelWeightsMissing
from attendance.face.engines.onnxruntime import OnnxRuntimeEngine
from attendance.face.facenet import (
    MAX_COSINE_DISTANCE,
    MAX_INT8_COSINE_DISTANCE,
    converted_graph,
    cosine_distances,
    int8_model,
)

log = logging.getLogger(__name__)

DEFAULT = {"PERFORMANCE_HINT": "LATENCY"}
FLOAT32 = {**DEFAULT, "INFERENCE_PRECISION_HINT": "f32"}
PRECISIONS = ("auto", "int8", "bf16", "f32")


class OpenVinoEngine:
    device = "CPU"

    def __init__(self, graph: Path, precision: str = "bf16"):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"unknown FaceNet precision {precision!r}: one of {PRECISIONS}")
        self._core = ov.Core()
        self._graph = graph
        sample = np.random.default_rng(0).random((2, 160, 160, 3), dtype=np.float32)
        self._sample = sample
        self._reference = OnnxRuntimeEngine(graph).predict(sample)
        self.precision = self._load(precision)

    @classmethod
    def from_weights(cls, weights: Path, precision: str = "bf16") -> OpenVinoEngine:
        return cls(converted_graph(weights), precision)

    def _load(self, precision: str) -> str:
        """Compile in ``precision``; what it ends up running in."""
        if precision == "f32":
            self._predict = self._compiled(str(self._graph), FLOAT32)
            return "f32"
        if precision in ("int8", "auto"):
            chosen = self._int8(required=precision == "int8")
            if chosen:
                return chosen
        self._predict = self._compiled(str(self._graph), DEFAULT)
        if self._computes_in == "f32":  # the CPU has no bfloat16: float32 is its default
            return "f32"
        worst = self._worst()
        if worst > MAX_COSINE_DISTANCE:
            log.warning(
                "OpenVINO's default precision moved embeddings by %.1e; using float32", worst
            )
            self._predict = self._compiled(str(self._graph), FLOAT32)
            return "f32"
        return "bf16"

    def _int8(self, required: bool) -> str | None:
        """Compile the INT8 model: "int8", or None when "auto" should not use it. Asked for
        explicitly, a missing or stale model is an error and a failed accuracy check a
        warning."""
        try:
            ir, passed = int8_model(self._graph)
        except ModelWeightsMissing:
            if required:
                raise
            return None
        if not passed:
            if not required:
                return None
            log.warning(
                "FaceNet INT8 at %s failed its accuracy check (python -m "
                "attendance.face.quantize --check); running it as ATTENDANCE_EMBED_PRECISION "
                "asks",
                ir,
            )
        self._predict = self._compiled(str(ir), DEFAULT)
        worst = self._worst()
        if worst > MAX_INT8_COSINE_DISTANCE:
            if required:
                raise ModelWeightsMissing(
                    f"FaceNet INT8 at {ir} moved embeddings by {worst:.1e} (more than "
                    f"{MAX_INT8_COSINE_DISTANCE:g}); run `make provision` to build it again"
                )
            log.warning("FaceNet INT8 moved embeddings by %.1e; not using it", worst)
            return None
        return "int8"

    def _worst(self) -> float:
        return float(cosine_distances(self._predict(self._sample), self._reference).max())

    def _compiled(self, model: str, config: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
        """``model`` compiled with ``config``; what it computes in is left in _computes_in."""
        compiled = self._core.compile_model(model, "CPU", config)
        self._computes_in = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        request = compiled.create_infer_request()

        def predict(batch: np.ndarray) -> np.ndarray:
            return request.infer({0: batch})[0].copy()

        return predict

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._predict(batch)
