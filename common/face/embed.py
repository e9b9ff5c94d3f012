"""FaceNet (InceptionResNetV1, 128-d) with the provisioned pretrained weights, compiled once."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from common.errors import ModelWeightsMissing
from common.gallery import normalise

log = logging.getLogger(__name__)

FACENET_WEIGHTS_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
# The compiled graph takes any batch size (its input signature leaves the batch dimension open),
# so it is traced once and nothing is padded: padding 17 faces to 32 cost 88% more compute here
# (docs/performance.md). A batch size seen for the first time pays ~15-40 ms once (oneDNN builds
# its kernels for that shape); warm_up() pays it at start for the common sizes.
WARM_UP_SIZES = (1, 2, 4, 8, 16, 24, 32)
MAX_BATCH_LIMIT = 256


def check_weights(path: Path) -> None:
    """Refuse to run on anything but the real pretrained weights (never random ones)."""
    if not path.is_file():
        raise ModelWeightsMissing(
            f"FaceNet weights not found at {path}; run `make provision` to install them"
        )
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != FACENET_WEIGHTS_SHA256:
        raise ModelWeightsMissing(
            f"FaceNet weights at {path} do not match the expected checksum; "
            "run `make provision` to reinstall them"
        )


class FaceNetEmbedder:
    def __init__(self, weights: Path, max_batch: int = 32):
        check_weights(weights)
        import tensorflow as tf
        from deepface.models.facial_recognition.tf.Facenet import InceptionResNetV1

        self.max_batch = min(MAX_BATCH_LIMIT, max(1, int(max_batch)))
        self.model = InceptionResNetV1()
        self.model.load_weights(str(weights))
        self._predict = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec([None, 160, 160, 3], tf.float32)],
            reduce_retracing=True,
        )
        self._tf = tf
        self.device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"

    def warm_up(self) -> None:
        for size in sorted({min(s, self.max_batch) for s in WARM_UP_SIZES} | {self.max_batch}):
            self._predict(self._tf.zeros((size, 160, 160, 3), self._tf.float32))

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
            out[start:stop] = self._predict(chunk).numpy()
        return normalise(out)
