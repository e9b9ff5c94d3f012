"""FaceNet's model files: the provisioned Keras weights, the TensorFlow graph built on them, and
the ONNX graph converted from that graph (attendance.face.onnx_export), which records the
SHA-256 of the weights it was made from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attendance.domain.errors import ModelWeightsMissing
from attendance.domain.matching import normalise
from attendance.face.weights import FACENET_WEIGHTS_SHA256

# The key, in the converted graph's metadata, of the weights' SHA-256.
WEIGHTS_SHA_KEY = "facenet_weights_sha256"
# Largest cosine distance allowed between two engines' embeddings of the same face.
MAX_COSINE_DISTANCE = 1e-3


def compiled_facenet(weights: Path) -> Any:
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


def onnx_path(weights: Path) -> Path:
    """Where the graph converted from ``weights`` is kept: next to them."""
    return weights.with_name("facenet_weights.onnx")


def source_sha256(graph: Path) -> str | None:
    """The weights' SHA-256 recorded in a converted graph, or None if there is no graph."""
    if not graph.is_file():
        return None
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}.get(WEIGHTS_SHA_KEY)


def is_current(weights: Path) -> bool:
    """Whether the converted graph next to ``weights`` was made from the provisioned ones."""
    return source_sha256(onnx_path(weights)) == FACENET_WEIGHTS_SHA256


def converted_graph(weights: Path) -> Path:
    """The ONNX graph converted from ``weights``; refused if missing or made from others."""
    graph = onnx_path(weights)
    if source_sha256(graph) != FACENET_WEIGHTS_SHA256:
        raise ModelWeightsMissing(
            f"FaceNet as ONNX not found at {graph}, or made from other weights; "
            "run `make provision` to convert it"
        )
    return graph


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, the cosine distance between two engines' embeddings of the same faces."""
    return 1.0 - (normalise(a) * normalise(b)).sum(axis=1)
