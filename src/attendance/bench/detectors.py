"""Figure 6: faces found and time per photo for each face detector DeepFace offers offline.

opencv and mtcnn are timed through the project's FaceDetector (detection on a copy downscaled
to ATTENDANCE_DETECT_MAX_SIDE with a black margin, alignment on the original), interleaved, on
selfie-many-people.jpg (7 people, some cut by the frame), couple.jpg (2) and the 30-face class
photo, and on the 25 single-face val photos (the bulk-upload case). The others (RetinaFace,
YuNet, SSD, YOLO, CenterFace) download weights when first built; each is tried in a child
process with an empty DEEPFACE_HOME and a time limit, and its error is reported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from attendance.bench.common import Context, Result, interleave, median, say

NAME = "detectors"
TITLE = "Face detectors on group photos"
GOAL = "pick the default detector from faces found and time"
OFFLINE = ["opencv", "mtcnn"]
DOWNLOADING = ["retinaface", "yunet", "ssd", "yolov8n", "centerface"]
GROUND_TRUTH = {"selfie-many-people.jpg": 7, "couple.jpg": 2, "class photo": 30}

PROBE = """
import numpy as np
from deepface.modules import modeling
detector = modeling.build_model(task="face_detector", model_name={name!r})
print("faces:", len(detector.detect_faces(np.zeros((240, 320, 3), np.uint8))))
"""


def probe(name: str, timeout: float) -> dict:
    """Build a detector in a child process that has no weights: does it work offline?"""
    with tempfile.TemporaryDirectory(prefix="bench-deepface-home-") as home:
        env = {**os.environ, "DEEPFACE_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "3"}
        try:
            proc = subprocess.run(
                [sys.executable, "-c", PROBE.format(name=name)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"works_offline": False, "error": f"no answer in {timeout:.0f} s"}
    if proc.returncode == 0:
        return {"works_offline": True, "error": None}
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln or "Exception" in ln]
    return {
        "works_offline": False,
        "error": (errors or lines or [f"exit {proc.returncode}"])[-1][:300],
    }


# The cascade's scan (window size step, overlapping hits a face needs): DeepFace's, and coarser.
SCANS = [(1.1, 10), (1.2, 5), (1.25, 3)]


def detection_variants(detectors: dict, images: dict) -> tuple[dict, dict]:
    """One timed variant per (detector, image), keyed "detector|image", for ``interleave``, and
    where each records the faces it found: found[detector][image]."""
    found: dict = {key: {} for key in detectors}
    variants = {}
    for key, det in detectors.items():
        for label, image in images.items():

            def one(det=det, key=key, label=label, image=image):
                found[key][label] = det.detect(image)

            variants[f"{key}|{label}"] = one
    return found, variants


def scan_sweep(ctx: Context, images: dict, photo) -> dict:
    """Faces found and time for each opencv scan in SCANS: the group photos, the class photo
    (interleaved, timed) and every single-face photo of the data set (counted)."""
    from attendance.bench.data import decode, train_photos, val_photos
    from attendance.config.settings import Settings
    from attendance.face.detect import FaceDetector

    settings = Settings()
    scans = {
        f"{step}/{hits}": FaceDetector(
            "opencv", settings.detect_max_side, settings.min_face_px, step, hits
        )
        for step, hits in SCANS
    }
    found, variants = detection_variants(scans, images)
    times = interleave(variants, ctx.repeats)
    singles = [decode(p) for p in (val_photos() + train_photos())[: (5 if ctx.quick else None)]]
    rows = {}
    for key, det in scans.items():
        row: dict[str, float] = {}
        for label in images:
            row[f"{label} faces"] = len(found[key][label])
            row[f"{label} ms"] = round(median(times[f"{key}|{label}"]) * 1000, 1)
        real, extra = photo.real_faces_found(
            [f.box.model_dump() for f in found[key]["class photo"]]
        )
        row.update({"class photo real faces": real, "class photo false detections": extra})
        counts = [len(det.detect(image)) for image in singles]
        row.update(
            {
                "single-face photos": len(singles),
                "with one face": sum(1 for c in counts if c == 1),
                "with none": sum(1 for c in counts if c == 0),
            }
        )
        rows[key] = row
        say(f"  {NAME}: opencv scan step/hits {key}: {row}")
    return rows


def run(ctx: Context) -> Result:
    from attendance.bench.data import FACES_DIR, class_photo, decode, val_photos

    result = Result(NAME, TITLE, GOAL)
    photo = class_photo()
    images = {
        "selfie-many-people.jpg": decode(FACES_DIR / "selfie-many-people.jpg"),
        "couple.jpg": decode(FACES_DIR / "couple.jpg"),
        "class photo": decode(photo.jpeg),
    }
    if ctx.quick:  # the largest photo is the slowest: the smoke run does without it
        del images["couple.jpg"]
    singles = [decode(p) for p in val_photos()[: (3 if ctx.quick else 25)]]
    detectors = {name: ctx.models.detector(name) for name in OFFLINE}
    for det in detectors.values():  # first call builds what it builds
        det.detect(singles[0])
    found, variants = detection_variants(detectors, images)
    for name, det in detectors.items():
        variants[f"{name}|singles"] = lambda det=det: [det.detect(i) for i in singles]
    times = interleave(variants, ctx.repeats)

    rows = {}
    for name in OFFLINE:
        row = {}
        for label in images:
            faces = found[name][label]
            entry = {
                "faces": len(faces),
                "ms": round(median(times[f"{name}|{label}"]) * 1000, 1),
                "people": GROUND_TRUTH[label],
            }
            if label == "class photo":
                real, extra = photo.real_faces_found([f.box.model_dump() for f in faces])
                entry.update(real_faces=real, false_detections=extra)
            row[label] = entry
        row["single-face photos"] = {
            "ms_per_photo": round(median(times[f"{name}|singles"]) * 1000 / len(singles), 1),
            "photos": len(singles),
        }
        rows[name] = row
        say(
            f"  {NAME}: {name}: "
            + "; ".join(
                f"{label}: {v['faces']} faces in {v['ms']} ms"
                for label, v in row.items()
                if "faces" in v
            )
            + f"; single-face photos {row['single-face photos']['ms_per_photo']}"
            " ms each"
        )
    result.details["offline"] = rows
    for name in OFFLINE:
        result.show(
            f"{name}_class_photo_real_faces", rows[name]["class photo"]["real_faces"], "of 30"
        )
        result.show(f"{name}_class_photo_ms", rows[name]["class photo"]["ms"], "ms")
        result.show(
            f"{name}_single_photo_ms", rows[name]["single-face photos"]["ms_per_photo"], "ms"
        )

    # How large the detection copy should be (ATTENDANCE_DETECT_MAX_SIDE), for opencv.
    from attendance.config.settings import Settings
    from attendance.face.detect import FaceDetector

    settings = Settings()
    sides = [settings.detect_max_side] if ctx.quick else [1280, 1600, 2048]
    sized = {
        side: FaceDetector(
            "opencv",
            side,
            settings.min_face_px,
            settings.detect_scale_step,
            settings.detect_min_neighbors,
        )
        for side in sides
    }
    sweep_found, sweep_variants = detection_variants(
        sized, {label: images[label] for label in ("couple.jpg", "class photo") if label in images}
    )
    sweep_times = interleave(sweep_variants, ctx.repeats)
    sweep = {}
    for side in sides:
        real, extra = photo.real_faces_found(
            [f.box.model_dump() for f in sweep_found[side]["class photo"]]
        )
        sweep[str(side)] = {
            "class_photo_ms": round(median(sweep_times[f"{side}|class photo"]) * 1000, 1),
            "class_photo_real_faces": real,
            "class_photo_false_detections": extra,
        }
        if "couple.jpg" in images:
            sweep[str(side)].update(
                couple_ms=round(median(sweep_times[f"{side}|couple.jpg"]) * 1000, 1),
                couple_faces=len(sweep_found[side]["couple.jpg"]),
            )
        say(f"  {NAME}: opencv at max side {side}: {sweep[str(side)]}")
    result.details["opencv_by_max_side"] = sweep
    result.details["opencv_by_scan"] = scan_sweep(ctx, images, photo)

    probes = {}
    for name in [] if ctx.quick else DOWNLOADING:
        probes[name] = probe(name, timeout=90)
        say(
            f"  {NAME}: {name}: "
            + (
                "works offline"
                if probes[name]["works_offline"]
                else f"fails offline: {probes[name]['error']}"
            )
        )
    result.details["downloading_detectors"] = probes
    result.figures["offline_detectors_working"] = sum(
        1 for p in probes.values() if p["works_offline"]
    ) + len(OFFLINE)
    from attendance.config.settings import Settings

    result.details["default"] = Settings.model_fields["detector"].default
    result.met = None  # a choice, not a goal: see docs/performance.md
    return result
