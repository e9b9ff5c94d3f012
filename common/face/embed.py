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
# Fixed batch shapes: every call pads to one of these, so the compiled graph is traced once each.
BATCH_BUCKETS = (1, 4, 8, 16, 32, 64, 128, 256)


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

        self.max_batch = max(b for b in BATCH_BUCKETS if b <= max(1, max_batch))
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
        for size in BATCH_BUCKETS:
            if size > self.max_batch:
                break
            self._predict(self._tf.zeros((size, 160, 160, 3), self._tf.float32))

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) float32 -> (n, 128) L2-normalised float32."""
        n = len(faces)
        if n == 0:
            return np.zeros((0, 128), dtype=np.float32)
        out = []
        for start in range(0, n, self.max_batch):
            chunk = np.asarray(faces[start:start + self.max_batch], dtype=np.float32)
            size = next(b for b in BATCH_BUCKETS if b >= len(chunk))
            if size > len(chunk):
                pad = np.zeros((size - len(chunk), 160, 160, 3), dtype=np.float32)
                chunk_padded = np.concatenate([chunk, pad])
            else:
                chunk_padded = chunk
            out.append(self._predict(chunk_padded).numpy()[: len(chunk)])
        return normalise(np.concatenate(out))
