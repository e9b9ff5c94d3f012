"""FaceNet in INT8 (attendance.face.quantize) on the real weights: the provisioned model embeds
real faces within the INT8 tolerance of float32, ATTENDANCE_EMBED_PRECISION selects as the
settings say, and a missing or stale model is refused naming `make provision`."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.conftest import DEEPFACE_HOME

pytestmark = [pytest.mark.slow, pytest.mark.model]


@pytest.fixture(scope="module")
def settings():
    os.environ["DEEPFACE_HOME"] = str(DEEPFACE_HOME.resolve())
    from attendance.config.settings import Settings

    return Settings(deepface_home=DEEPFACE_HOME)


@pytest.fixture(scope="module")
def graph(settings):
    from attendance.face.facenet import converted_graph, int8_model

    graph = converted_graph(settings.weights_path)
    int8_model(graph)  # provisioned by `make provision`
    return graph


@pytest.fixture(scope="module")
def real_faces(settings, faces_dir, celeb_dir) -> np.ndarray:
    from attendance.face.detect import FaceDetector
    from attendance.face.quantize import detected

    paths = [faces_dir / "selfie-many-people.jpg"] + sorted((celeb_dir / "val").glob("*/*.jpg"))
    found = detected(FaceDetector.from_settings(settings), paths, [""] * len(paths), every=True)
    assert len(found.pixels) >= 15
    return found.pixels


def test_int8_embeds_real_faces_within_its_tolerance_of_float32(graph, real_faces):
    from attendance.face.engines.onnxruntime import OnnxRuntimeEngine
    from attendance.face.engines.openvino import OpenVinoEngine
    from attendance.face.facenet import MAX_INT8_COSINE_DISTANCE, cosine_distances

    engine = OpenVinoEngine(graph, "int8")
    assert engine.precision == "int8"
    worst = float(
        cosine_distances(
            engine.predict(real_faces), OnnxRuntimeEngine(graph).predict(real_faces)
        ).max()
    )
    print(f"int8: worst cosine distance to float32 over {len(real_faces)} faces: {worst:.2e}")
    assert worst < MAX_INT8_COSINE_DISTANCE


def test_each_precision_selects_its_model(graph):
    from attendance.face.engines.openvino import OpenVinoEngine
    from attendance.face.facenet import int8_model

    _, passed = int8_model(graph)
    # bf16 where the CPU computes in it, float32 where it does not (AVX2 only).
    default = OpenVinoEngine(graph, "bf16").precision
    assert default in ("bf16", "f32")
    assert OpenVinoEngine(graph, "f32").precision == "f32"
    assert OpenVinoEngine(graph, "auto").precision == ("int8" if passed else default)
    with pytest.raises(ValueError, match="precision"):
        OpenVinoEngine(graph, "fp4")


def test_a_missing_or_stale_int8_model_is_refused(graph, tmp_path):
    import openvino as ov

    from attendance.domain.errors import ModelWeightsMissing
    from attendance.face.engines.openvino import OpenVinoEngine
    from attendance.face.facenet import RT_SECTION, WEIGHTS_SHA_KEY, int8_path

    mine = tmp_path / graph.name
    mine.symlink_to(graph)
    default = OpenVinoEngine(mine, "bf16").precision  # what "auto" runs without INT8
    with pytest.raises(ModelWeightsMissing, match="make provision"):
        OpenVinoEngine(mine, "int8")
    assert OpenVinoEngine(mine, "auto").precision == default != "int8"
    model = ov.Core().read_model(str(int8_path(graph)))
    model.set_rt_info("0" * 64, [RT_SECTION, WEIGHTS_SHA_KEY])
    ov.save_model(model, str(int8_path(mine)), compress_to_fp16=False)
    with pytest.raises(ModelWeightsMissing, match="other weights"):
        OpenVinoEngine(mine, "int8")
    assert OpenVinoEngine(mine, "auto").precision == default


def test_quantizing_a_few_faces_saves_a_model_that_records_its_weights(graph, real_faces, tmp_path):
    from attendance.face.facenet import (
        FACENET_WEIGHTS_SHA256,
        PASSED,
        RT_SECTION,
        VERDICT_KEY,
        read_int8,
    )
    from attendance.face.quantize import quantized, save_atomically

    model = quantized(graph, real_faces[:4])
    model.set_rt_info(FACENET_WEIGHTS_SHA256, [RT_SECTION, "facenet_weights_sha256"])
    model.set_rt_info(PASSED, [RT_SECTION, VERDICT_KEY])
    out = tmp_path / "facenet_weights.int8.xml"
    save_atomically(model, out)
    assert read_int8(out) == (FACENET_WEIGHTS_SHA256, PASSED)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "facenet_weights.int8.bin",
        "facenet_weights.int8.xml",
    ]
