"""The runtimes FaceNet can run on, one module each, by the name ATTENDANCE_EMBED_ENGINE gives
them, and the choice "auto" makes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from attendance.face.engines.base import Engine
from attendance.face.engines.onnxruntime import OnnxRuntimeEngine
from attendance.face.engines.openvino import OpenVinoEngine
from attendance.face.engines.tensorflow import TensorFlowEngine

# Each is built from the provisioned Keras weights; the ONNX ones run the graph converted from
# them.
ENGINES: dict[str, Callable[[Path], Engine]] = {
    "tensorflow": TensorFlowEngine.from_weights,
    "onnx": OnnxRuntimeEngine.from_weights,
    "openvino": OpenVinoEngine.from_weights,
}

__all__ = ["ENGINES", "Engine", "load_engine", "resolve_engine"]


def resolve_engine(engine: str) -> str:
    """ "auto": TensorFlow where it sees a GPU (the other engines' CPU builds would not use it),
    else OpenVINO."""
    if engine != "auto":
        return engine
    import tensorflow as tf

    return "tensorflow" if tf.config.list_physical_devices("GPU") else "openvino"


def load_engine(engine: str, weights: Path) -> Engine:
    """The engine named ``engine`` (already resolved) on FaceNet's ``weights``."""
    try:
        load = ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown FaceNet engine {engine!r}: one of {sorted(ENGINES)}") from None
    return load(weights)
