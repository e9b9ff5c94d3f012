"""FaceNet's model files: the provisioned Keras weights, the TensorFlow graph built on them, and
the ONNX graph converted from that graph (attendance.face.onnx_export) and its INT8 model
(attendance.face.quantize), which record the SHA-256 of the weights they were made from."""

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
# Largest cosine distance between INT8's and float32's embeddings of the same input that the
# INT8 model's load-time check accepts: above what quantization itself costs on real faces
# (attendance.face.quantize measures it), far below what a broken model or a wrong file gives
# (unrelated faces' embeddings are tenths apart).
MAX_INT8_COSINE_DISTANCE = 2e-2
# Where the INT8 IR records its provenance and the accuracy check's verdict (rt_info paths).
RT_SECTION = "attendance"
VERDICT_KEY = "accuracy_check"
SUMMARY_KEY = "accuracy_summary"
PASSED, FAILED = "passed", "failed"


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


def int8_path(graph: Path) -> Path:
    """Where the INT8 model of the ONNX ``graph`` is kept: next to it, as an OpenVINO IR."""
    return graph.with_name(graph.name.removesuffix(".onnx") + ".int8.xml")


def _rt_info(model: Any, key: str) -> str | None:
    if not model.has_rt_info([RT_SECTION, key]):
        return None
    return str(model.get_rt_info([RT_SECTION, key]).astype(str))


def read_int8(ir: Path) -> tuple[str | None, str | None]:
    """(weights' SHA-256, verdict) recorded in the INT8 IR; (None, None) if there is none."""
    if not ir.is_file() or not ir.with_suffix(".bin").is_file():
        return None, None
    import openvino as ov

    model = ov.Core().read_model(str(ir))
    return _rt_info(model, WEIGHTS_SHA_KEY), _rt_info(model, VERDICT_KEY)


def int8_is_current(ir: Path) -> bool:
    return read_int8(ir)[0] == FACENET_WEIGHTS_SHA256


def int8_model(graph: Path) -> tuple[Path, bool]:
    """The INT8 IR of ``graph`` and whether it passed the accuracy check; refused if missing
    or made from other weights."""
    ir = int8_path(graph)
    sha, verdict = read_int8(ir)
    if sha != FACENET_WEIGHTS_SHA256:
        raise ModelWeightsMissing(
            f"FaceNet in INT8 not found at {ir}, or made from other weights; "
            "run `make provision` to build it"
        )
    return ir, verdict == PASSED


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, the cosine distance between two engines' embeddings of the same faces."""
    return 1.0 - (normalise(a) * normalise(b)).sum(axis=1)
