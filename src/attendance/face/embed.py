"""FaceNet (InceptionResNetV1, 128-d) with the provisioned pretrained weights, on OpenVINO or ONNX
Runtime (the same graph, converted by src/attendance/face/onnx_export.py) or on TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from attendance.domain.errors import ModelWeightsMissing
from attendance.domain.matching import normalise
from attendance.face.weights import check_weights_file

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
    check_weights_file(path, FACENET_WEIGHTS_SHA256, "FaceNet weights")


def compiled_facenet(weights: Path):
    """FaceNet on TensorFlow as one tf.function over any batch size (what the ONNX graph is
    converted from, too)."""
    import tensorflow as tf
    from deepface.models.facial_recognition.tf.Facenet import InceptionResNetV1

    model = InceptionResNetV1()
    model.load_weights(str(weights))
    return tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, 160, 160, 3], tf.float32, name="faces")],
        reduce_retracing=True,
    )


def tensorflow_predict(weights: Path):
    """FaceNet on TensorFlow, compiled once: (n, 160, 160, 3) float32 -> (n, 128) numpy."""
    compiled = compiled_facenet(weights)

    def predict(batch: np.ndarray) -> np.ndarray:
        return compiled(batch).numpy()

    return predict


def onnx_predict(path: Path):
    """The same FaceNet converted to ONNX (src/attendance/face/onnx_export.py), on ONNX Runtime's CPU
    kernels: ~1.3x TensorFlow's faces/s on 30 faces, 2x on one (docs/performance.md)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {name: batch})[0]

    return predict


def openvino_predict(path: Path):
    """The same ONNX graph compiled by OpenVINO for this CPU. Where the CPU computes in bfloat16
    (AVX512_BF16, AMX), OpenVINO does by default: 2x ONNX Runtime's faces/s here, with
    embeddings within 1e-3 cosine distance of TensorFlow's (the worst of 127 real faces: 8.8e-4).
    If a check on sample faces finds them farther apart, it compiles in float32 instead."""
    import openvino as ov

    from attendance.face.onnx_export import MAX_COSINE_DISTANCE, cosine_distances

    core = ov.Core()

    def compiled(config: dict):
        request = core.compile_model(str(path), "CPU", config).create_infer_request()

        def predict(batch: np.ndarray) -> np.ndarray:
            return request.infer({0: batch})[0].copy()

        return predict

    predict = compiled({"PERFORMANCE_HINT": "LATENCY"})
    sample = np.random.default_rng(0).random((2, 160, 160, 3), dtype=np.float32)
    worst = float(cosine_distances(predict(sample), onnx_predict(path)(sample)).max())
    if worst > MAX_COSINE_DISTANCE:
        log.warning("OpenVINO's default precision moved embeddings by %.1e; using float32", worst)
        predict = compiled({"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    return predict


ONNX_ENGINES = {"openvino": openvino_predict, "onnx": onnx_predict}


def resolve_engine(engine: str) -> str:
    """ "auto": TensorFlow where it sees a GPU (the other engines' CPU builds would not use it),
    else OpenVINO."""
    if engine != "auto":
        return engine
    import tensorflow as tf

    return "tensorflow" if tf.config.list_physical_devices("GPU") else "openvino"


class FaceNetEmbedder:
    def __init__(self, weights: Path, max_batch: int = 32, engine: str = "auto"):
        check_weights(weights)
        self.max_batch = min(MAX_BATCH_LIMIT, max(1, int(max_batch)))
        self.engine = resolve_engine(engine)
        if self.engine in ONNX_ENGINES:
            from attendance.face.onnx_export import onnx_path, source_sha256

            graph = onnx_path(weights)
            if source_sha256(graph) != FACENET_WEIGHTS_SHA256:
                raise ModelWeightsMissing(
                    f"FaceNet as ONNX not found at {graph}, or made from other weights; "
                    "run `make provision` to convert it"
                )
            self.predict = ONNX_ENGINES[self.engine](graph)
            self.device = "CPU"
        else:
            import tensorflow as tf

            self.predict = tensorflow_predict(weights)
            self.device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"

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
