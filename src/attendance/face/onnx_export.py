"""FaceNet for ONNX Runtime, converted here from the provisioned Keras weights (never downloaded).

`make provision` (and the worker image's build) runs ``attendance-export-onnx``. The graph
records the SHA-256 of the weights it was made from (attendance.face.facenet): the worker
refuses a graph made from other weights, and the export runs again when they differ. Before the
graph is kept, its embeddings are checked against TensorFlow's on the same input. Then the INT8
model is quantized from the graph (attendance.face.quantize), where the calibration faces are
(ATTENDANCE_CELEB_DIR, --celeb-dir), when it is missing or stale.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from attendance.domain.errors import ModelWeightsMissing
from attendance.face.engines.onnxruntime import OnnxRuntimeEngine
from attendance.face.facenet import (
    MAX_COSINE_DISTANCE,
    WEIGHTS_SHA_KEY,
    compiled_facenet,
    cosine_distances,
    is_current,
    onnx_path,
)
from attendance.face.weights import FACENET_WEIGHTS_SHA256, check_facenet_weights

OPSET = 17


def export(weights: Path, out: Path | None = None) -> Path:
    """Convert the Keras FaceNet at ``weights`` to ONNX at ``out`` (next to the weights)."""
    check_facenet_weights(weights)
    out = out or onnx_path(weights)
    import onnx
    import tf2onnx

    facenet = compiled_facenet(weights)
    graph, _ = tf2onnx.convert.from_function(
        facenet,
        input_signature=facenet.input_signature,
        opset=OPSET,
    )
    entry = graph.metadata_props.add()
    entry.key, entry.value = WEIGHTS_SHA_KEY, FACENET_WEIGHTS_SHA256
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        onnx.save(graph, str(tmp))
        # Random pixels exercise every layer; the tests compare the engines on real faces.
        sample = np.random.default_rng(0).random((4, 160, 160, 3), dtype=np.float32)
        converted = OnnxRuntimeEngine(tmp).predict(sample)
        worst = float(cosine_distances(facenet(sample).numpy(), converted).max())
        if worst > MAX_COSINE_DISTANCE:
            raise ModelWeightsMissing(
                f"the ONNX FaceNet differs from TensorFlow's (cosine distance {worst:.2e} > "
                f"{MAX_COSINE_DISTANCE}); it was not kept"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from attendance.config.settings import Settings
    from attendance.face import quantize

    parser = argparse.ArgumentParser(prog="attendance-export-onnx")
    parser.add_argument(
        "--celeb-dir", type=Path, default=None, help="5 Celebrity Faces, to calibrate INT8 on"
    )
    parser.add_argument("--faces-dir", type=Path, default=None, help="strangers' photos")
    args = parser.parse_args(argv)
    settings = Settings()
    weights = settings.weights_path
    out = onnx_path(weights)
    if is_current(weights):
        print(f"onnx_export: FaceNet graph already converted: {out}")
    else:
        started = time.monotonic()
        try:
            export(weights, out)
        except ModelWeightsMissing as err:
            print(f"onnx_export: {err}", file=sys.stderr)
            return 1
        print(f"onnx_export: converted FaceNet to {out} in {time.monotonic() - started:.0f} s")
    return quantize.ensure(
        weights,
        settings,
        args.celeb_dir or quantize.celeb_dir(),
        args.faces_dir or quantize.faces_dir(),
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
