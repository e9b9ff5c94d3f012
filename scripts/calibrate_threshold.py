"""Measure genuine and impostor cosine distances on real photos to choose `match_threshold`.

Enrolls the 5 Celebrity Faces train split, queries the val split, and reports for each candidate
threshold how many val faces would be rejected (false unknowns) and how many impostors accepted.
Also checks the group photos: with only Angelina Jolie enrolled, every stranger must stay unknown.

    .venv/bin/python scripts/calibrate_threshold.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.images import decode_bgr  # noqa: E402
from common.pipeline import FacePipeline  # noqa: E402
from common.settings import get_settings  # noqa: E402


def embed_largest(pipe: FacePipeline, path: Path) -> np.ndarray | None:
    faces = pipe.detector.detect(decode_bgr(path.read_bytes()))
    if not faces:
        return None
    face = max(faces, key=lambda f: f.box.w * f.box.h)
    return pipe.embedder.embed(face.pixels[None])[0]


def main() -> None:
    settings = get_settings()
    pipe = FacePipeline.load(settings)
    celeb = REPO / "var" / "datasets" / "5-celebrity-faces"
    faces = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests" / "data" / "faces"

    train, train_ids = [], []
    for path in sorted((celeb / "train").glob("*/*.jpg")):
        vec = embed_largest(pipe, path)
        if vec is not None:
            train.append(vec)
            train_ids.append(path.parent.name)
    gallery, ids = np.stack(train), np.array(train_ids)

    genuine, impostor = [], []
    for path in sorted((celeb / "val").glob("*/*.jpg")):
        vec = embed_largest(pipe, path)
        if vec is None:
            genuine.append(np.inf)
            continue
        dist = 1 - gallery @ vec
        for person in np.unique(ids):
            best = float(dist[ids == person].min())
            (genuine if person == path.parent.name else impostor).append(best)

    jolie = np.stack([embed_largest(pipe, faces / f) for f in
                      ("img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg")])
    strangers, jolie_in_group = [], []
    for name in ("couple.jpg", "selfie-many-people.jpg"):
        found = pipe.detector.detect(decode_bgr((faces / name).read_bytes()))
        dist = (1 - pipe.embedder.embed(np.stack([f.pixels for f in found])) @ jolie.T).min(1)
        jolie_in_group.append(float(dist.min()))
        strangers.extend(sorted(dist)[1:])

    genuine, impostor = np.array(genuine), np.array(impostor + strangers)
    print(f"detector={settings.detector}  genuine: n={len(genuine)} max={genuine.max():.3f} "
          f"mean={genuine.mean():.3f}  impostor: n={len(impostor)} min={impostor.min():.3f} "
          f"mean={impostor.mean():.3f}  jolie in group photos: {np.round(jolie_in_group, 3)}")
    print("threshold  false-unknown(val)  false-match(impostors)")
    for t in np.arange(0.30, 0.61, 0.05):
        print(f"{t:9.2f}  {int((genuine > t).sum()):>8d}/{len(genuine)}  "
              f"{int((impostor <= t).sum()):>12d}/{len(impostor)}")


if __name__ == "__main__":
    main()
