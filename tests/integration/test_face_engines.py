"""The face pipeline's FaceNet engines and its detector scan, on real photos.

OpenVINO (the default on a CPU) and ONNX Runtime run the graph converted from the Keras weights:
each must embed every real face as TensorFlow does, cosine distance under 1e-3, and a graph
converted from other weights is refused. The coarser opencv scan must find each face DeepFace's
scan finds in the group photos.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tests.conftest import DEEPFACE_HOME

pytestmark = [pytest.mark.slow, pytest.mark.model]

MAX_COSINE_DISTANCE = 1e-3


@pytest.fixture(scope="module")
def settings():
    os.environ["DEEPFACE_HOME"] = str(DEEPFACE_HOME.resolve())
    from attendance.config.settings import Settings

    return Settings(deepface_home=DEEPFACE_HOME)


@pytest.fixture(scope="module")
def detector(settings):
    from attendance.face.detect import FaceDetector

    return FaceDetector.from_settings(settings)


@pytest.fixture(scope="module")
def haar(settings):
    """The opencv detector with the project's coarser scan (ATTENDANCE_DETECTOR=opencv)."""
    from attendance.face.detect import FaceDetector

    return FaceDetector.from_settings(settings, backend="opencv")


@pytest.fixture(scope="module")
def real_faces(detector, faces_dir, celeb_dir) -> np.ndarray:
    from attendance.photos.images import decode_bgr

    paths = [faces_dir / name for name in ("selfie-many-people.jpg", "couple.jpg", "img2.jpg")]
    paths += sorted((celeb_dir / "val").glob("*/*.jpg"))
    faces = [
        f.pixels
        for p in paths
        for f in detector.detect(decode_bgr(p.read_bytes()))
        if f.identifiable
    ]
    assert len(faces) >= 15, len(faces)
    return np.stack(faces)


@pytest.fixture(scope="module")
def on_tensorflow(settings, real_faces) -> np.ndarray:
    from attendance.face.embed import FaceNetEmbedder

    return FaceNetEmbedder(settings.weights_path, engine="tensorflow").embed(real_faces)


@pytest.mark.parametrize("engine", ["openvino", "onnx"])
def test_the_converted_graph_embeds_real_faces_as_tensorflow_does(
    settings, real_faces, on_tensorflow, engine
):
    from attendance.face.embed import FaceNetEmbedder
    from attendance.face.facenet import cosine_distances

    embedder = FaceNetEmbedder(settings.weights_path, engine=engine)
    assert embedder.engine == engine
    vectors = embedder.embed(real_faces)
    assert vectors.shape == on_tensorflow.shape == (len(real_faces), 128)
    worst = float(cosine_distances(vectors, on_tensorflow).max())
    print(
        f"{engine}: worst cosine distance to TensorFlow over {len(real_faces)} faces: {worst:.2e}"
    )
    assert worst < MAX_COSINE_DISTANCE, worst
    # One face at a time gives the same vectors as the batch (no padding, no batch effects).
    single = embedder.embed(real_faces[:1])
    assert float(cosine_distances(single, vectors[:1]).max()) < MAX_COSINE_DISTANCE


def test_openvino_names_the_precision_it_computes_in(settings):
    import openvino as ov

    from attendance.face.engines.openvino import OpenVinoEngine
    from attendance.face.facenet import converted_graph

    engine = OpenVinoEngine(converted_graph(settings.weights_path), "bf16")
    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    # bfloat16 where the CPU computes in it (unless its check sent it back to float32); a CPU
    # without it runs float32 and must not be reported as bfloat16.
    assert engine.precision in (("bf16", "f32") if has_bf16 else ("f32",))


def test_auto_engine_is_openvino_without_a_gpu(settings):
    import tensorflow as tf

    from attendance.face.engines import resolve_engine

    expected = "tensorflow" if tf.config.list_physical_devices("GPU") else "openvino"
    assert resolve_engine("auto") == expected
    assert resolve_engine("tensorflow") == "tensorflow"


def test_a_graph_converted_from_other_weights_is_refused(settings, tmp_path):
    import onnx

    from attendance.domain.errors import ModelWeightsMissing
    from attendance.face.embed import FaceNetEmbedder
    from attendance.face.facenet import WEIGHTS_SHA_KEY, onnx_path

    weights = tmp_path / ".deepface" / "weights" / settings.weights_path.name
    weights.parent.mkdir(parents=True)
    shutil.copy(settings.weights_path, weights)
    with pytest.raises(ModelWeightsMissing, match="make provision"):
        FaceNetEmbedder(weights, engine="openvino")  # no graph next to these weights yet
    graph = onnx.load(str(onnx_path(settings.weights_path)))
    for entry in graph.metadata_props:
        if entry.key == WEIGHTS_SHA_KEY:
            entry.value = "0" * 64
    onnx.save(graph, str(onnx_path(weights)))
    for engine in ("openvino", "onnx"):
        with pytest.raises(ModelWeightsMissing, match="other weights"):
            FaceNetEmbedder(weights, engine=engine)


# Detections, not people: in the selfie both scans box 5 of the 7 faces, a bow tie and a dress.
@pytest.mark.parametrize("photo, people", [("selfie-many-people.jpg", 7), ("couple.jpg", 2)])
def test_the_coarser_scan_finds_every_face_deepfaces_scan_finds(haar, faces_dir, photo, people):
    from attendance.face.detect import FaceDetector
    from attendance.photos.images import decode_bgr

    deepfaces = FaceDetector(
        "opencv", haar.detect_max_side, haar.min_face_px, scale_step=1.1, min_neighbors=10
    )
    image = decode_bgr((faces_dir / photo).read_bytes())
    ours, theirs = haar.detect(image), deepfaces.detect(image)
    assert len(ours) == len(theirs) == people
    for face in theirs:  # each face DeepFace's scan finds, ours finds at about the same place
        b = face.box
        assert any(
            abs((o.box.x + o.box.w / 2) - (b.x + b.w / 2)) < b.w / 3
            and abs((o.box.y + o.box.h / 2) - (b.y + b.h / 2)) < b.h / 3
            for o in ours
        ), b
