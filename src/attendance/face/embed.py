"""FaceNet (InceptionResNetV1, 128-d) with the provisioned pretrained weights, on one of the
engines of attendance.face.engines: OpenVINO or ONNX Runtime (the same graph, converted by
attendance.face.onnx_export) or TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attendance.domain.matching import normalise
from attendance.face.engines import load_engine, resolve_engine
from attendance.face.weights import check_facenet_weights

# The engines take any batch size, so nothing is padded. A batch size seen for the first time
# pays once for building its kernels (docs/performance.md, "Embedding: no padding, balanced
# batches"); warm_up() pays it at start for the common sizes.
WARM_UP_SIZES = (1, 2, 4, 8, 16, 24, 32)
MAX_BATCH_LIMIT = 256


class FaceNetEmbedder:
    def __init__(
        self, weights: Path, max_batch: int = 32, engine: str = "auto", precision: str = "bf16"
    ):
        check_facenet_weights(weights)
        self.max_batch = min(MAX_BATCH_LIMIT, max(1, int(max_batch)))
        self.engine = resolve_engine(engine)
        runtime = load_engine(self.engine, weights, precision)
        # What it computes in: OpenVINO's choice, float32 on the other engines.
        self.precision = getattr(runtime, "precision", "f32")
        self.predict = runtime.predict  # (n, 160, 160, 3) -> (n, 128), not normalised
        self.device = runtime.device

    def warm_up(self) -> None:
        for size in sorted({min(s, self.max_batch) for s in WARM_UP_SIZES} | {self.max_batch}):
            self.predict(np.zeros((size, 160, 160, 3), np.float32))

    def batches(self, n: int) -> list[tuple[int, int]]:
        """Split n faces into the fewest batches of at most max_batch, of near-equal sizes
        (33 faces with max_batch 32: 17 + 16, not 32 + 1)."""
        if n <= 0:
            return []
        count = -(-n // self.max_batch)
        base, extra = divmod(n, count)
        bounds, start = [], 0
        for i in range(count):
            size = base + (1 if i < extra else 0)
            bounds.append((start, start + size))
            start += size
        return bounds

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) float32 -> (n, 128) L2-normalised float32."""
        n = len(faces)
        if n == 0:
            return np.zeros((0, 128), dtype=np.float32)
        out = np.empty((n, 128), dtype=np.float32)
        for start, stop in self.batches(n):
            chunk = np.ascontiguousarray(faces[start:stop], dtype=np.float32)
            out[start:stop] = self.predict(chunk)
        return normalise(out)
