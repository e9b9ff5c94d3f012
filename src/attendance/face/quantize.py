"""FaceNet in INT8: the converted ONNX graph quantized by NNCF's post-training quantization,
calibrated on the project's own faces, and the check that decides whether it may be used.

Calibration: every identifiable face of the 5 Celebrity Faces train photos, detected and aligned
as the worker does (sorted file order, so the same data give the same model). The check embeds
held-out faces (the val split, and the photos of tests/data/faces as people nobody enrolled)
in float32 (ONNX Runtime), bf16 and INT8 (OpenVINO), against a gallery of the train faces, and
measures how far each decision (domain.matching: the ``match_min_photos``-th nearest of a
student's embeddings against ``match_threshold``) is from the threshold: its margin. The INT8
model passes when no decision changes and no decisive distance moves by MARGIN_FRACTION of its
own margin or more, gallery and faces both in INT8 or the gallery still in float32 (enrolled
before the switch).

The model is saved as an OpenVINO IR next to the ONNX graph, with the weights' SHA-256 and the
check's verdict in its rt_info: a stale one is refused, and only one that passed is chosen by
ATTENDANCE_EMBED_PRECISION=auto. ``attendance-export-onnx`` (`make provision`) builds it when
missing or stale; ``python -m attendance.face.quantize --check`` prints the check.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attendance.domain.errors import ModelWeightsMissing
from attendance.domain.matching import normalise
from attendance.face.facenet import (
    FAILED,
    PASSED,
    RT_SECTION,
    SUMMARY_KEY,
    VERDICT_KEY,
    WEIGHTS_SHA_KEY,
    converted_graph,
    cosine_distances,
    int8_is_current,
    int8_model,
    int8_path,
    read_int8,
)
from attendance.face.weights import FACENET_WEIGHTS_SHA256

# A decisive distance may move by less than this fraction of its own margin: the rest is
# headroom for faces the check has not seen.
MARGIN_FRACTION = 0.5
# NNCF's defaults for a CNN: the performance preset (symmetric), fast bias correction.
SUBSET_SIZE = 300

Predict = Callable[[np.ndarray], np.ndarray]


def celeb_dir() -> Path:
    return Path(os.environ.get("ATTENDANCE_CELEB_DIR", "var/datasets/5-celebrity-faces"))


def faces_dir() -> Path:
    return Path(os.environ.get("ATTENDANCE_FACES_DIR", "tests/data/faces"))


# --- Faces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Faces:
    pixels: np.ndarray  # (n, 160, 160, 3) float32, as the detector aligns them
    people: np.ndarray  # (n,) str: whose face, "" for someone nobody enrolled


def detected(detector: Any, paths: Sequence[Path], people: Sequence[str], *, every: bool) -> Faces:
    """The identifiable faces of ``paths``: every one, or the largest of each photo (a labelled
    photo's person)."""
    import cv2

    pixels, whose = [], []
    for path, person in zip(paths, people):
        # Not attendance.photos.images.decode_bgr (face sits below photos): OpenCV applies the
        # EXIF orientation too, and these are plain JPEGs.
        bgr = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        found = [f for f in detector.detect(bgr) if f.identifiable]
        if not every and found:
            found = [max(found, key=lambda f: f.box.w * f.box.h)]
        pixels += [f.pixels for f in found]
        whose += [person] * len(found)
    return Faces(np.stack(pixels).astype(np.float32), np.array(whose, dtype=str))


def photos(split_dir: Path) -> list[Path]:
    return sorted(split_dir.glob("*/*.jpg"))


def calibration_faces(detector: Any, celeb: Path, limit: int | None = None) -> np.ndarray:
    """Every identifiable face of the train photos, in sorted file order."""
    paths = photos(celeb / "train")[:limit]
    return detected(detector, paths, [""] * len(paths), every=True).pixels


# --- Quantization -----------------------------------------------------------------------------


def quantized(graph: Path, calibration: np.ndarray) -> Any:
    """The ONNX ``graph`` quantized to INT8 by NNCF on ``calibration`` faces."""
    import nncf  # type: ignore[import-untyped]
    import openvino as ov

    model = ov.Core().read_model(str(graph))
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    # model_type=TRANSFORMER (SmoothQuant) and full bias correction moved the held-out faces'
    # embeddings no less than these defaults, for twice the time.
    return nncf.quantize(
        model,
        dataset,
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=min(SUBSET_SIZE, len(calibration)),
        fast_bias_correction=True,
    )


def save_atomically(model: Any, out: Path) -> None:
    """Write the IR under temporary names, then move the weights and, last, the XML that names
    them into place."""
    import openvino as ov

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)


def compiled(model: Any, config: dict[str, str] | None = None) -> Predict:
    import openvino as ov

    request = (
        ov.Core()
        .compile_model(model, "CPU", config or {"PERFORMANCE_HINT": "LATENCY"})
        .create_infer_request()
    )
    return lambda batch: request.infer({0: batch})[0].copy()


# --- The check --------------------------------------------------------------------------------


def decisive_distances(
    faces: np.ndarray, gallery: np.ndarray, gallery_people: np.ndarray, min_photos: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) distances the matcher decides on, for n faces and each of the k people of the
    gallery: the ``min_photos``-th nearest of that person's embeddings (all of them, if fewer);
    and the k people, sorted."""
    people = np.unique(gallery_people)
    distances = 1.0 - normalise(faces) @ normalise(gallery).T
    out = np.empty((len(faces), len(people)))
    for j, person in enumerate(people):
        theirs = np.sort(distances[:, gallery_people == person], axis=1)
        out[:, j] = theirs[:, min(min_photos, theirs.shape[1]) - 1]
    return out, people


def decisions(decisive: np.ndarray, people: np.ndarray, threshold: float) -> list[str]:
    """Whom each face is matched to ("" for nobody): the nearest person within the threshold."""
    nearest = decisive.argmin(axis=1)
    return [str(people[j]) if decisive[i, j] <= threshold else "" for i, j in enumerate(nearest)]


@dataclass(frozen=True)
class Margins:
    genuine: np.ndarray  # threshold - decisive distance to the face's own person
    impostor: np.ndarray  # the nearest other person's decisive distance - threshold

    @property
    def smallest(self) -> float:
        """The decision closest to the threshold, right or wrong: how far it is from it."""
        return float(np.abs(np.concatenate([self.genuine, self.impostor])).min())


def margins(
    decisive: np.ndarray, people: np.ndarray, whose: np.ndarray, threshold: float
) -> Margins:
    own = whose[:, None] == people[None, :]
    genuine = threshold - decisive[own]
    impostor = np.where(own, np.inf, decisive).min(axis=1) - threshold
    return Margins(genuine, impostor)


@dataclass(frozen=True)
class Verdict:
    """How one precision's embeddings compare with float32's on the held-out faces."""

    precision: str
    worst_distance: float  # cosine distance of an embedding to float32's, the worst
    median_distance: float
    worst_shift: float  # of a decisive distance, gallery in this precision or in float32
    smallest_margin: float  # float32's
    worst_share: float  # of a decision's own margin that its decisive distance moved, the most
    flips: int  # decisions that differ from float32's, either gallery

    @property
    def passed(self) -> bool:
        return passes(self.worst_share, self.flips)

    def summary(self) -> str:
        return (
            f"{self.precision}: cosine distance to float32 worst {self.worst_distance:.2e}, "
            f"median {self.median_distance:.2e}; decisive distances moved by up to "
            f"{self.worst_shift:.4f} (smallest margin {self.smallest_margin:.4f}), at most "
            f"{self.worst_share:.2f} of a decision's own margin (allowed: "
            f"{MARGIN_FRACTION:g}); {self.flips} decision(s) changed: "
            f"{PASSED if self.passed else FAILED}"
        )


def passes(worst_share: float, flips: int) -> bool:
    """The rule: no decision changes, and none comes nearer the threshold than
    1 - MARGIN_FRACTION of its float32 margin."""
    return flips == 0 and worst_share < MARGIN_FRACTION


def worst_share(reference: Margins, moved: Margins) -> float:
    """The largest share of a decision's float32 margin by which it moved."""
    ref = np.concatenate([reference.genuine, reference.impostor])
    new = np.concatenate([moved.genuine, moved.impostor])
    return float((np.abs(new - ref) / np.maximum(np.abs(ref), 1e-9)).max())


def verdict(
    precision: str,
    reference: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray],
    gallery_people: np.ndarray,
    whose: np.ndarray,
    threshold: float,
    min_photos: int,
) -> Verdict:
    """``reference`` and ``candidate``: (gallery, faces) embeddings by float32 and by
    ``precision``; ``whose`` names each face's person ("" for a stranger)."""
    (ref_gallery, ref_faces), (gallery, faces) = reference, candidate
    ref, people = decisive_distances(ref_faces, ref_gallery, gallery_people, min_photos)
    moved = [
        decisive_distances(faces, gallery, gallery_people, min_photos)[0],
        decisive_distances(faces, ref_gallery, gallery_people, min_photos)[0],
    ]
    expected = decisions(ref, people, threshold)
    flips = sum(
        sum(a != b for a, b in zip(expected, decisions(d, people, threshold))) for d in moved
    )
    distance = np.concatenate(
        [cosine_distances(gallery, ref_gallery), cosine_distances(faces, ref_faces)]
    )
    ref_margins = margins(ref, people, whose, threshold)
    return Verdict(
        precision,
        float(distance.max()),
        float(np.median(distance)),
        float(max(np.abs(d - ref).max() for d in moved)),
        ref_margins.smallest,
        max(worst_share(ref_margins, margins(d, people, whose, threshold)) for d in moved),
        int(flips),
    )


@dataclass(frozen=True)
class Check:
    verdicts: dict[str, Verdict]
    margins: Margins
    faces: int
    gallery: int

    def lines(self) -> list[str]:
        m = self.margins
        out = [
            f"{self.faces} held-out faces against a gallery of {self.gallery} train faces",
            f"float32 margins: genuine smallest {m.genuine.min():+.4f} median "
            f"{np.median(m.genuine):+.4f} ({int((m.genuine < 0).sum())} of {len(m.genuine)} "
            f"missed); impostor smallest {m.impostor.min():+.4f} median "
            f"{np.median(m.impostor):+.4f} ({int((m.impostor < 0).sum())} of "
            f"{len(m.impostor)} accepted); smallest distance to the threshold {m.smallest:.4f}",
        ]
        return out + [v.summary() for v in self.verdicts.values()]


def check(
    engines: dict[str, Predict], detector: Any, celeb: Path, strangers: Path | None, settings: Any
) -> Check:
    """Embed the held-out faces and the train gallery with each of ``engines`` ("f32" first,
    the reference) and compare the others with it."""
    train = photos(celeb / "train")
    gallery = detected(detector, train, [p.parent.name for p in train], every=False)
    val = photos(celeb / "val")
    held = detected(detector, val, [p.parent.name for p in val], every=False)
    if strangers is not None and strangers.is_dir():
        extra = sorted(strangers.glob("*.jpg"))
        others = detected(detector, extra, [""] * len(extra), every=True)
        held = Faces(
            np.concatenate([held.pixels, others.pixels]),
            np.concatenate([held.people, others.people]),
        )
    embedded = {
        name: (predict(gallery.pixels), predict(held.pixels)) for name, predict in engines.items()
    }
    reference = embedded.pop("f32")
    threshold, min_photos = settings.match_threshold, settings.match_min_photos
    ref, people = decisive_distances(reference[1], reference[0], gallery.people, min_photos)
    return Check(
        {
            name: verdict(
                name, reference, vectors, gallery.people, held.people, threshold, min_photos
            )
            for name, vectors in embedded.items()
        },
        margins(ref, people, held.people, threshold),
        len(held.people),
        len(gallery.people),
    )


def reference_engines(graph: Path) -> dict[str, Predict]:
    """float32 on ONNX Runtime and OpenVINO's default (bf16) compile of ``graph``."""
    from attendance.face.engines.onnxruntime import OnnxRuntimeEngine

    return {"f32": OnnxRuntimeEngine(graph).predict, "bf16": compiled(str(graph))}


# --- Building ---------------------------------------------------------------------------------


def build(
    weights: Path,
    settings: Any,
    celeb: Path,
    strangers: Path | None = None,
    *,
    limit: int | None = None,
    out: Path | None = None,
    detector: Any = None,
) -> Check:
    """Quantize the ONNX graph of ``weights`` on the train faces of ``celeb`` (the first
    ``limit`` photos), check it on the held-out faces and save it with its verdict."""
    from attendance.face.detect import FaceDetector

    graph = converted_graph(weights)
    out = out or int8_path(graph)
    detector = detector or FaceDetector.from_settings(settings)
    model = quantized(graph, calibration_faces(detector, celeb, limit))
    result = check(
        {**reference_engines(graph), "int8": compiled(model)}, detector, celeb, strangers, settings
    )
    passed = result.verdicts["int8"].passed
    model.set_rt_info(FACENET_WEIGHTS_SHA256, [RT_SECTION, WEIGHTS_SHA_KEY])
    model.set_rt_info(PASSED if passed else FAILED, [RT_SECTION, VERDICT_KEY])
    model.set_rt_info(result.verdicts["int8"].summary(), [RT_SECTION, SUMMARY_KEY])
    save_atomically(model, out)
    return result


def ensure(weights: Path, settings: Any, celeb: Path, strangers: Path | None) -> int:
    """Build the INT8 model when it is missing or stale (attendance-export-onnx's last step)."""
    graph = converted_graph(weights)
    ir = int8_path(graph)
    if int8_is_current(ir):
        print(f"quantize: FaceNet INT8 already built ({read_int8(ir)[1]}): {ir}")
        return 0
    if importlib.util.find_spec("nncf") is None:
        print("quantize: NNCF is not installed; FaceNet stays in bf16/float32")
        return 0
    if not (celeb / "train").is_dir() or not (celeb / "val").is_dir():
        print(f"quantize: no calibration faces in {celeb}; FaceNet stays in bf16/float32")
        return 0
    started = time.monotonic()
    result = build(weights, settings, celeb, strangers)
    for line in result.lines():
        print(f"quantize: {line}")
    state = "passed" if result.verdicts["int8"].passed else "FAILED (auto keeps bf16)"
    print(
        f"quantize: built FaceNet INT8 at {ir} in {time.monotonic() - started:.0f} s; "
        f"accuracy check {state}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attendance.face.quantize", description=__doc__)
    parser.add_argument("--check", action="store_true", help="check the built INT8 model only")
    parser.add_argument("--force", action="store_true", help="build it again even if current")
    parser.add_argument("--celeb-dir", type=Path, default=None)
    parser.add_argument("--faces-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    from attendance.config.settings import Settings
    from attendance.face.detect import FaceDetector

    settings = Settings()
    weights = settings.weights_path
    celeb, strangers = args.celeb_dir or celeb_dir(), args.faces_dir or faces_dir()
    try:
        if args.check:
            graph = converted_graph(weights)
            ir, _ = int8_model(graph)
            engines = {**reference_engines(graph), "int8": compiled(str(ir))}
            result = check(
                engines, FaceDetector.from_settings(settings), celeb, strangers, settings
            )
            for line in result.lines():
                print(line)
            return 0 if result.verdicts["int8"].passed else 1
        if args.force:
            int8_path(converted_graph(weights)).unlink(missing_ok=True)
        return ensure(weights, settings, celeb, strangers)
    except ModelWeightsMissing as err:
        print(f"quantize: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
