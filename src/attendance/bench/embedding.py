"""Figure 1: the embedding stage, faces/s, against DeepFace per face and the batched ceiling.

All embed the same real, already-detected faces (5 Celebrity Faces, cropped and aligned by
the project's detector):
- pipeline: FaceNetEmbedder.embed on all of them at once (what a job does), with the default
  engine (ONNX Runtime on a CPU), and the same with the TensorFlow engine;
- baseline: DeepFace.represent(model_name="Facenet", detector_backend="skip") once per face;
- ceiling: the same model on TensorFlow, compiled with tf.function, on full batches of each size;
  the best.
Also: what the former bucket padding (1, 4, 8, 16, 32) cost on awkward face counts; and
OpenVINO in bf16 against the INT8 model `make provision` quantizes (attendance.face.quantize) on
batches of 1, 8 and 35 faces, as a share of the CPU's matrix throughput in that precision
(matmul_peak: a large matrix product compiled by OpenVINO, timed in the same rounds; the nominal
peak from /proc/cpuinfo, cpu_peak, is recorded beside it), with each precision's worst cosine
distance to float32 (ONNX Runtime).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from attendance.bench.common import Context, Result, interleave, median, say, setup_env

NAME = "embedding"
TITLE = "Embedding stage: faces/s"
GOAL = ">= 85% of the batched tf.function ceiling"
LEGACY_BUCKETS = (1, 4, 8, 16, 32, 64, 128, 256)
# FaceNet (InceptionResNetV1 at 160x160): multiply-accumulates per face; each is two operations.
GMAC_PER_FACE = 1.42
PRECISION_BATCHES = (1, 8, 35)


def cpu_peak() -> dict[str, float]:
    """Nominal peak GFLOP/s (GOP/s for int8) of this CPU's cores, from /proc/cpuinfo: cores x MHz x
    operations per cycle. Two FMA pipes; Zen 4 (AMD family 25) runs 512-bit instructions as two
    256-bit halves, so 8 float32 lanes per pipe: 2 x 8 x 2 = 32 FLOP per cycle and core. A
    bf16 dot product (AVX512_BF16) does two products per lane, an int8 one (AVX512_VNNI)
    four: 64 and 128."""
    import os

    info = open("/proc/cpuinfo").read()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line and "\t" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    mhz = float(fields.get("cpu MHz", "0"))
    halves = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
    lanes = 16 if "avx512f" in flags and not halves else 8 if "avx2" in flags else 4
    f32 = 2 * lanes * 2
    cores = os.cpu_count() or 1
    peak = {"f32": cores * mhz / 1000 * f32}
    peak["bf16"] = peak["f32"] * (2 if "avx512_bf16" in flags else 1)
    peak["int8"] = peak["f32"] * (4 if "avx512_vnni" in flags or "avx_vnni" in flags else 1)
    return peak


def matmul_peak(precision: str, n: int = 2048):
    """A callable running one n x n x n matrix product compiled by OpenVINO in ``precision``
    ("f32", "bf16", or "int8" through FakeQuantize on both operands, which OpenVINO runs as an
    int8 product), and the operations it does: what this CPU's matrix units sustain."""
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([n, n], ov.Type.f32, name="a")
    w = ops.constant(rng.standard_normal((n, n)).astype(np.float32))
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if precision == "int8":
        lo, hi = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
        product = ops.matmul(
            ops.fake_quantize(a, lo, hi, lo, hi, 256),
            ops.fake_quantize(w, lo, hi, lo, hi, 255),
            False,
            False,
        )
    else:
        config["INFERENCE_PRECISION_HINT"] = precision
        product = ops.matmul(a, w, False, False)
    model = ov.Model([product], [a])
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    x = rng.uniform(-3, 3, (n, n)).astype(np.float32)
    request.infer({0: x})
    return partial(request.infer, {0: x}), 2 * n**3


def precisions(ctx: Context, faces: np.ndarray, result: Result) -> None:
    """OpenVINO bf16 against INT8, alternating in the same rounds."""
    from attendance.domain.errors import ModelWeightsMissing
    from attendance.face.engines.onnxruntime import OnnxRuntimeEngine
    from attendance.face.engines.openvino import OpenVinoEngine
    from attendance.face.facenet import converted_graph, cosine_distances

    graph = converted_graph(ctx.models.settings.weights_path)
    engines = {"bf16": OpenVinoEngine(graph, "bf16")}
    try:
        engines["int8"] = OpenVinoEngine(graph, "int8")
    except ModelWeightsMissing as err:
        say(f"  {NAME}: no INT8 model ({err})")
    reference = OnnxRuntimeEngine(graph).predict(faces)
    nominal = cpu_peak()
    gemms = {
        engine.precision: matmul_peak(engine.precision, 1024 if ctx.quick else 2048)
        for engine in engines.values()
    }
    peak_runs: dict[str, list[float]] = {p: [] for p in gemms}
    sizes = PRECISION_BATCHES[:2] if ctx.quick else PRECISION_BATCHES
    by_batch: dict[str, dict[str, float]] = {}
    for size in sizes:
        batch = np.ascontiguousarray(np.resize(faces, (size, *faces.shape[1:])))
        for engine in engines.values():  # first call per shape builds its kernels: not timed
            engine.predict(batch)
        times = interleave(
            {
                **{name: partial(e.predict, batch) for name, e in engines.items()},
                **{f"peak_{p}": run for p, (run, _) in gemms.items()},
            },
            3 if ctx.quick else max(5, ctx.repeats),
        )
        for p in gemms:
            peak_runs[p] += times[f"peak_{p}"]
        # The fastest product of these rounds: what the matrix units sustained while the faces
        # were embedded.
        peak = {p: ops / min(peak_runs[p]) / 1e9 for p, (_, ops) in gemms.items()}
        by_batch[str(size)] = {}
        for name in engines:
            fps = size / median(times[name])
            share = fps * GMAC_PER_FACE * 2 / peak[engines[name].precision]
            by_batch[str(size)][f"{name}_faces_per_s"] = round(fps, 1)
            by_batch[str(size)][f"{name}_share_of_peak"] = round(share, 3)
        line = ", ".join(f"{k} {v}" for k, v in by_batch[str(size)].items())
        say(f"  {NAME}: batch {size}: {line}")
    top = str(sizes[-1])
    for name, engine in engines.items():
        result.show(
            f"openvino_{name}_faces_per_s",
            by_batch[top][f"{name}_faces_per_s"],
            f"faces/s (batch {top}, {engine.precision}; "
            f"{by_batch[top][f'{name}_share_of_peak']:.1%} of the "
            f"{peak[engine.precision]:.0f} G{'OP' if engine.precision == 'int8' else 'FLOP'}/s "
            "a matrix product sustains)",
        )
        worst = float(cosine_distances(engine.predict(faces), reference).max())
        result.show(
            f"openvino_{name}_worst_cosine_distance_to_f32",
            float(f"{worst:.2e}"),
            f"(the {len(faces)} faces, {engine.precision} against ONNX Runtime)",
        )
    if "int8" in by_batch[top]:
        result.show(
            "int8_vs_bf16",
            round(by_batch[top]["int8_faces_per_s"] / by_batch[top]["bf16_faces_per_s"], 2),
            "x",
        )
    result.details["precision_by_batch"] = by_batch
    result.details["matmul_peak_gops"] = {k: round(v, 1) for k, v in peak.items()}
    result.details["nominal_peak_gops"] = {k: round(v, 1) for k, v in nominal.items()}
    say(
        f"  {NAME}: matrix products sustained (GOP/s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in peak.items())
        + "; nominal from /proc/cpuinfo: "
        + ", ".join(f"{k} {v:.0f}" for k, v in nominal.items())
    )


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
    precisions(ctx, faces, result)
    return result
