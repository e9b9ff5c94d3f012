"""The runtimes FaceNet can run on, one module each, by the name ATTENDANCE_EMBED_ENGINE gives
them, and the choice "auto" makes."""

from __future__ import annotations

import glob
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

__all__ = ["ENGINES", "Engine", "load_engine", "resolve_engine", "visible_gpus"]


def nvidia_device_present() -> bool:
    """Whether the NVIDIA driver exposes a device here: TensorFlow can see no GPU without one,
    and importing it to ask takes a good part of a worker's start."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or bool(glob.glob("/proc/driver/nvidia/gpus/*"))


def visible_gpus() -> list[str]:
    """The GPUs TensorFlow sees (imported only where an NVIDIA device is present)."""
    if not nvidia_device_present():
        return []
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def resolve_engine(engine: str) -> str:
    """ "auto": TensorFlow where it sees a GPU (the other engines' CPU builds would not use it),
    else OpenVINO."""
    if engine != "auto":
        return engine
    return "tensorflow" if visible_gpus() else "openvino"


def load_engine(engine: str, weights: Path, precision: str = "bf16") -> Engine:
    """The engine named ``engine`` (already resolved) on FaceNet's ``weights``; ``precision``
    (ATTENDANCE_EMBED_PRECISION) is OpenVINO's, the others compute in float32."""
    if engine == "openvino":
        return OpenVinoEngine.from_weights(weights, precision)
    try:
        load = ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown FaceNet engine {engine!r}: one of {sorted(ENGINES)}") from None
    return load(weights)
