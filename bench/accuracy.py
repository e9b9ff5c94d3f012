"""Figure 8: accuracy. Faces found and false detections, students recognised, strangers accepted.

Side by side on the same photos: the project's pipeline with CenterFace (landmark alignment) and
with OpenCV's Haar cascade (eye alignment), and DeepFace's own `DeepFace.represent` (Haar,
DeepFace's scan and alignment, at DeepFace's own Facenet threshold), all with the same FaceNet.

- Detection: the labelled group photos (tests/data/groups, tests/data/faces/labels.json): a
  detection matches a labelled face at IoU >= 0.3; any other detection is false, except in a
  photo marked `crowd`, where unlabelled faces are real.
- Recognition: each of the 5 Celebrity Faces people is enrolled from their train photos (those
  with exactly one face, as enrollment takes them); a val photo is recognised when one of its
  faces is matched to its person.
- Strangers (the open set): every face detected in the group photos (nobody there is enrolled)
  and, for each of the 5 people, their val faces against a gallery of the other four. A stranger
  is accepted when it matches anybody within the threshold: the worst error the product can make.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import REPO, Context, Result, say

NAME = "accuracy"
TITLE = "Accuracy: faces found, strangers accepted, students recognised"
GOAL = (">= 95% of the group photos' faces found with <= 1 false detection, 0 strangers "
        "accepted, >= 24 of 25 val photos recognised")
GROUPS_DIR = REPO / "tests" / "data" / "groups"
IOU = 0.3


@dataclass
class Labelled:
    name: str
    path: Path
    boxes: list[list[float]]
    faces: int
    crowd: bool = False


def labelled_photos() -> list[Labelled]:
    from bench.data import FACES_DIR

    photos = []
    for folder in (GROUPS_DIR, FACES_DIR):
        for name, label in json.loads((folder / "labels.json").read_text()).items():
            photos.append(Labelled(name, folder / name, label["boxes"], label["faces"],
                                   bool(label.get("crowd"))))
    return photos


def iou(a, b) -> float:
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def match_boxes(truth: list, found: list, threshold: float = IOU) -> tuple[int, list[int]]:
    """(labelled faces found, indices of detections that match no labelled face), greedily by
    IoU: each labelled face takes at most one detection."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)),
                   reverse=True)
    used_t, used_f = set(), set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
    return len(used_t), [j for j in range(len(found)) if j not in used_f]


@dataclass
class Faces:
    boxes: list  # [x, y, w, h] each
    embeddings: np.ndarray  # (n, 128), L2-normalised


@dataclass
class Pipeline:
    """One way of turning a photo into faces and embeddings, with its threshold."""

    name: str
    threshold: float
    run: object  # Callable[[np.ndarray], Faces]
    cache: dict = field(default_factory=dict)

    def faces(self, key: str, bgr_of) -> Faces:
        if key not in self.cache:
            self.cache[key] = self.run(bgr_of())
        return self.cache[key]


def project_pipeline(ctx: Context, backend: str) -> Pipeline:
    from common.face.detect import FaceDetector
    from common.gallery import normalise

    settings = ctx.models.settings
    detector = FaceDetector.from_settings(settings, backend=backend)
    embedder = ctx.models.embedder

    def run(bgr) -> Faces:
        found = detector.detect(bgr)
        vectors = (normalise(embedder.embed(np.stack([f.pixels for f in found]))) if found
                   else np.zeros((0, 128), np.float32))
        return Faces([[f.box.x, f.box.y, f.box.w, f.box.h] for f in found], vectors)

    return Pipeline(f"project {backend}", settings.match_threshold, run)


def deepface_pipeline(ctx: Context) -> Pipeline:
    from deepface.modules.verification import find_threshold

    from common.gallery import normalise

    deepface = ctx.models.deepface

    def run(bgr) -> Faces:
        found = deepface.represent(img_path=bgr, model_name="Facenet", detector_backend="opencv",
                                   enforce_detection=False)
        height, width = bgr.shape[:2]
        # Without a face DeepFace embeds the whole photo (confidence 0): not a detection.
        found = [f for f in found if not (f["face_confidence"] == 0 and f["facial_area"]["w"]
                                          >= width - 1 and f["facial_area"]["h"] >= height - 1)]
        boxes = [[f["facial_area"][k] for k in "xywh"] for f in found]
        vectors = (normalise(np.array([f["embedding"] for f in found], np.float32)) if found
                   else np.zeros((0, 128), np.float32))
        return Faces(boxes, vectors)

    return Pipeline("DeepFace.represent", float(find_threshold("Facenet", "cosine")), run)


def detection(pipe: Pipeline, photos: list[Labelled]) -> dict:
    from bench.data import decode

    rows, found, total, false = {}, 0, 0, 0
    for photo in photos:
        faces = pipe.faces(photo.name, lambda p=photo.path: decode(p))
        hits, others = match_boxes(photo.boxes, faces.boxes)
        extra = 0 if photo.crowd else len(others)
        rows[photo.name] = {"faces": photo.faces, "found": hits, "false": extra}
        found, total, false = found + hits, total + photo.faces, false + extra
    return {"found": found, "faces": total, "false_detections": false,
            "recall": found / total if total else 0.0, "photos": rows}


def recognition(pipe: Pipeline, photos: list[Labelled], people: list[str], quick: bool) -> dict:
    from bench.data import decode, train_photos, val_photos

    gallery_vectors, gallery_people = [], []
    for person in people:
        for path in train_photos(person)[: (4 if quick else None)]:
            faces = pipe.faces(str(path), lambda p=path: decode(p))
            if len(faces.boxes) == 1:  # enrollment takes a photo with exactly one face
                gallery_vectors.append(faces.embeddings[0])
                gallery_people.append(person)
    gallery = np.array(gallery_vectors, np.float32)
    who = np.array(gallery_people)

    def nearest(vectors: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Per face: the smallest cosine distance to an allowed gallery row."""
        if not len(vectors) or not allowed.any():
            return np.full(len(vectors), np.inf)
        return (1.0 - vectors @ gallery[allowed].T).min(axis=1)

    val = [p for p in val_photos() if p.parent.name in people][: (5 if quick else None)]
    recognised, genuine = 0, []
    impostor: list[float] = []
    for path in val:
        faces = pipe.faces(str(path), lambda p=path: decode(p))
        person = path.parent.name
        own = nearest(faces.embeddings, who == person)
        others = nearest(faces.embeddings, who != person)
        # Recognised: a face whose nearest student is this person, within the threshold.
        if any(o <= pipe.threshold and o < x for o, x in zip(own, others)):
            recognised += 1
        genuine.append(float(own.min()) if len(own) else float("inf"))
        # The same faces against a gallery without their person: all strangers then.
        impostor += [float(d) for d in others]
    for photo in photos:
        faces = pipe.faces(photo.name, lambda p=photo.path: decode(p))
        impostor += [float(d) for d in nearest(faces.embeddings, np.ones(len(who), bool))]
    impostor_arr = np.array(impostor)
    return {
        "gallery_embeddings": len(gallery), "val_photos": len(val), "recognised": recognised,
        "strangers": len(impostor), "strangers_accepted": int((impostor_arr <= pipe.threshold).sum()),
        "threshold": pipe.threshold,
        "genuine_max": max(genuine) if genuine else None,
        "stranger_min": float(impostor_arr.min()) if len(impostor_arr) else None,
    }


def run(ctx: Context) -> Result:
    from bench.data import PEOPLE

    result = Result(NAME, TITLE, GOAL)
    photos = labelled_photos()
    people = PEOPLE[:2] if ctx.quick else PEOPLE
    if ctx.quick:
        photos = [p for p in photos if p.name in ("t1.jpg", "selfie-many-people.jpg")]
    pipes = [project_pipeline(ctx, "centerface"), project_pipeline(ctx, "opencv"),
             deepface_pipeline(ctx)]
    default = ctx.models.settings.detector
    rows = {}
    for pipe in pipes:
        found = detection(pipe, photos)
        known = recognition(pipe, photos, people, ctx.quick)
        rows[pipe.name] = {"detection": found, "recognition": known}
        say(f"  {NAME}: {pipe.name}: faces found {found['found']}/{found['faces']}, false "
            f"{found['false_detections']}; val recognised {known['recognised']}/"
            f"{known['val_photos']}; strangers accepted {known['strangers_accepted']}/"
            f"{known['strangers']} at {known['threshold']:.2f} (genuine max "
            f"{known['genuine_max']:.3f}, closest stranger {known['stranger_min']:.3f})")
    result.details["pipelines"] = rows
    result.details["default_detector"] = default
    for pipe in pipes:
        key = pipe.name.replace("project ", "").replace("DeepFace.represent", "deepface")
        row = rows[pipe.name]
        result.show(f"{key}_faces_found_pct", round(100 * row["detection"]["recall"], 1), "%")
        result.show(f"{key}_false_detections", row["detection"]["false_detections"])
        result.show(f"{key}_recognised", row["recognition"]["recognised"],
                    f"of {row['recognition']['val_photos']}")
        result.show(f"{key}_strangers_accepted", row["recognition"]["strangers_accepted"],
                    f"of {row['recognition']['strangers']}")
    best = rows[f"project {default}"]
    result.met = (best["detection"]["recall"] >= 0.95
                  and best["detection"]["false_detections"] <= 1
                  and best["recognition"]["strangers_accepted"] == 0
                  and best["recognition"]["recognised"] >= best["recognition"]["val_photos"] - 1)
    return result
