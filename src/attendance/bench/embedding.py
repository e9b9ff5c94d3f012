"""Figure 1: the embedding stage, faces/s, against DeepFace per face and the batched ceiling.

All embed the same real, already-detected faces (5 Celebrity Faces, cropped and aligned by
the project's detector):
- pipeline: FaceNetEmbedder.embed on all of them at once (what a job does), with the default
  engine (ONNX Runtime on a CPU), and the same with the TensorFlow engine;
- baseline: DeepFace.represent(model_name="Facenet", detector_backend="skip") once per face;
- ceiling: the same model on TensorFlow, compiled with tf.function, on full batches of each size;
  the best.
Also: what the former bucket padding (1, 4, 8, 16, 32) cost on awkward face counts.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from attendance.bench.common import Context, Result, interleave, median, say, setup_env

NAME = "embedding"
TITLE = "Embedding stage: faces/s"
GOAL = ">= 85% of the batched tf.function ceiling"
LEGACY_BUCKETS = (1, 4, 8, 16, 32, 64, 128, 256)


def detected_faces(ctx: Context, limit: int | None = None) -> np.ndarray:
    from attendance.bench.data import decode, train_photos, val_photos

    detector = ctx.models.detector("opencv")
    faces = []
    for path in val_photos() + train_photos():
        found = detector.detect(decode(path))
        if found:
            faces.append(max(found, key=lambda f: f.box.w * f.box.h).pixels)
        if limit and len(faces) >= limit:
            break
    return np.stack(faces)


def run(ctx: Context) -> Result:
    setup_env()
    from attendance.face.embed import FaceNetEmbedder

    result = Result(NAME, TITLE, GOAL)
    faces = detected_faces(ctx, limit=12 if ctx.quick else None)
    embedder = ctx.models.embedder
    deepface = ctx.models.deepface
    on_tensorflow = FaceNetEmbedder(
        ctx.models.settings.weights_path, embedder.max_batch, engine="tensorflow"
    )
    on_tensorflow.warm_up()
    predict = on_tensorflow.predict  # the compiled graph, called directly
    n = len(faces)
    say(f"  {NAME}: {n} real detected faces")

    def tile(size: int) -> np.ndarray:
        return np.ascontiguousarray(np.resize(faces, (size, *faces.shape[1:])))

    batch_sizes = [4, 8] if ctx.quick else [8, 16, 32, 64, 128]
    batches = {bs: tile(bs) for bs in batch_sizes}
    for bs in batch_sizes:  # first call per shape builds its kernels: not timed
        predict(batches[bs])
    per_face = faces[: (2 if ctx.quick else 8)]
    per_face_uint8 = [(f * 255.0).round().astype(np.uint8) for f in per_face]

    def deepface_per_face():
        for img in per_face_uint8:
            deepface.represent(
                img_path=img, model_name="Facenet", detector_backend="skip", enforce_detection=False
            )

    on_tensorflow.embed(faces)  # the shapes of this split: not timed
    variants = {
        "pipeline": lambda: embedder.embed(faces),
        "deepface": deepface_per_face,
        "pipeline_tensorflow": lambda: on_tensorflow.embed(faces),
    }
    for bs in batch_sizes:
        variants[f"ceiling_b{bs}"] = partial(predict, batches[bs])
    # The ceiling is the best of several batch sizes, each a noisy median: more rounds than
    # elsewhere, so that picking the best does not mostly pick the luckiest.
    times = interleave(variants, 1 if ctx.quick else 7)

    pipeline_fps = n / median(times["pipeline"])
    tensorflow_fps = n / median(times["pipeline_tensorflow"])
    deepface_fps = len(per_face) / median(times["deepface"])
    ceiling = {bs: bs / median(times[f"ceiling_b{bs}"]) for bs in batch_sizes}
    best_bs = max(ceiling, key=ceiling.__getitem__)
    result.show("pipeline_faces_per_s", round(pipeline_fps, 1), f"faces/s ({embedder.engine})")
    result.show(
        "pipeline_tensorflow_faces_per_s",
        round(tensorflow_fps, 1),
        "faces/s (the same on TensorFlow)",
    )
    result.show("deepface_represent_faces_per_s", round(deepface_fps, 2), "faces/s")
    result.show("ceiling_faces_per_s", round(ceiling[best_bs], 1), f"faces/s (batch {best_bs})")
    result.show("pipeline_vs_ceiling", round(pipeline_fps / ceiling[best_bs], 3))
    result.show("pipeline_vs_deepface", round(pipeline_fps / deepface_fps, 1), "x")
    result.show("pipeline_vs_tensorflow", round(pipeline_fps / tensorflow_fps, 2), "x")
    from attendance.face.facenet import cosine_distances

    worst = float(cosine_distances(embedder.embed(faces), on_tensorflow.embed(faces)).max())
    result.show(
        "worst_cosine_distance_to_tensorflow",
        float(f"{worst:.2e}"),
        f"(the {n} faces' embeddings, {embedder.engine} against TensorFlow)",
    )
    result.met = pipeline_fps / ceiling[best_bs] >= 0.85
    result.details["ceiling_by_batch"] = {str(bs): round(v, 1) for bs, v in ceiling.items()}
    result.details["faces"] = n
    result.details["deepface_faces_timed"] = len(per_face)
    result.details["embed_max_batch"] = embedder.max_batch
    result.details["engine"] = embedder.engine

    # Awkward face counts: the pipeline (no padding, balanced batches) against the former
    # padding to fixed buckets, in the same rounds.
    counts = [1, 5] if ctx.quick else [1, 17, 30, 33]

    def legacy(k: int):
        chunk = tile(k)
        out = []
        for start in range(0, k, 32):
            part = chunk[start : start + 32]
            size = next(b for b in LEGACY_BUCKETS if b >= len(part))
            padded = (
                np.concatenate([part, np.zeros((size - len(part), *part.shape[1:]), np.float32)])
                if size > len(part)
                else part
            )
            out.append(predict(padded)[: len(part)])
        return out

    awkward = {}
    for k in counts:
        sample = tile(k)
        embedder.embed(sample), legacy(k)  # warm both shapes
        t = interleave(
            {
                "pipeline": partial(embedder.embed, sample),
                "legacy_padding": partial(legacy, k),
            },
            ctx.repeats,
        )
        awkward[str(k)] = {
            "pipeline_ms": round(median(t["pipeline"]) * 1000, 1),
            "legacy_padding_ms": round(median(t["legacy_padding"]) * 1000, 1),
            "pipeline_faces_per_s": round(k / median(t["pipeline"]), 1),
            "pipeline_vs_ceiling": round(k / median(t["pipeline"]) / ceiling[best_bs], 3),
        }
        say(
            f"  {NAME}: {k} faces: pipeline {awkward[str(k)]['pipeline_ms']} ms, "
            f"former bucket padding {awkward[str(k)]['legacy_padding_ms']} ms"
        )
    result.details["by_face_count"] = awkward
    return result
