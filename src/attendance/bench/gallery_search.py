"""Figure 4: matching 30 faces against 1k-1M enrolled embeddings (synthetic unit vectors).

Synthetic galleries: 5 embeddings per student, every student a candidate (the worst case: the
whole gallery is searched), 10 of the 30 faces planted near a gallery row so the assignment has
work to do. Timed: attendance.domain.matching.match_groups on the candidate set a worker caches per gallery
version and class (building that set once per version is reported apart). Also a 30-student
class inside the largest gallery.

DeepFace.find needs a folder of images, so it runs on a small real gallery (25 photos of the 5
Celebrity Faces people) and 5 val photos as queries; each find() call detects and embeds its
query too, so it is compared with the project's detect + embed + match of the same photo.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from attendance.bench.common import Context, Result, median, say

NAME = "gallery_search"
TITLE = "Gallery search: 30 faces against N embeddings"
GOAL = "30 faces against 100k embeddings in < 20 ms"
PER_STUDENT = 5


def unit_rows(rng, n: int, dim: int = 128) -> np.ndarray:
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def run(ctx: Context) -> Result:
    from attendance.domain import matching
    from attendance.domain.matching import candidate_set, match_groups

    default_threads = matching.LARGE_THREADS
    result = Result(NAME, TITLE, GOAL)
    rng = np.random.default_rng(7)
    sizes = [1_000, 10_000] if ctx.quick else [1_000, 10_000, 100_000, 1_000_000]
    reps = 3 if ctx.quick else 15
    rows = {}
    for size in sizes:
        gallery = unit_rows(rng, size)
        ids = np.array([f"s{i // PER_STUDENT:07d}" for i in range(size)])
        faces = unit_rows(rng, 30)
        planted = rng.choice(size, 10, replace=False)
        faces[:10] = gallery[planted] + 0.05 * unit_rows(rng, 10)
        faces /= np.linalg.norm(faces, axis=1, keepdims=True)
        t0 = time.perf_counter()
        cands = candidate_set(gallery, ids, set(ids.tolist()))
        build = time.perf_counter() - t0
        match_groups(faces, [30], cands, 0.45)
        times, one_thread = [], []
        for _ in range(reps):  # interleaved: the default, and one BLAS thread at every size
            t0 = time.perf_counter()
            got = match_groups(faces, [30], cands, 0.45)[0]
            times.append(time.perf_counter() - t0)
            matching.LARGE_THREADS = 1
            try:
                t0 = time.perf_counter()
                match_groups(faces, [30], cands, 0.45)
                one_thread.append(time.perf_counter() - t0)
            finally:
                matching.LARGE_THREADS = default_threads
        hits = sum(m.student_id == ids[p] for m, p in zip(got[:10], planted))
        assert hits == 10, f"planted faces not found: {hits}/10"
        rows[str(size)] = {
            "match_ms": round(median(times) * 1000, 3),
            "match_ms_1_blas_thread": round(median(one_thread) * 1000, 3),
            "candidate_set_ms": round(build * 1000, 1),
            "students": size // PER_STUDENT,
        }
        say(
            f"  {NAME}: {size:>9,} embeddings: match {rows[str(size)]['match_ms']} ms "
            f"({rows[str(size)]['match_ms_1_blas_thread']} ms on 1 BLAS thread; candidate "
            f"set, once per version: {rows[str(size)]['candidate_set_ms']} ms)"
        )
        if size == sizes[-1]:
            # A class of 30 students inside the largest gallery.
            roster = set(ids[::PER_STUDENT][:30].tolist())
            sub = candidate_set(gallery, ids, roster)
            t = []
            for _ in range(reps):
                t0 = time.perf_counter()
                match_groups(faces, [30], sub, 0.45)
                t.append(time.perf_counter() - t0)
            result.details["class_of_30_in_largest_ms"] = round(median(t) * 1000, 3)
        del gallery, ids, cands
    result.details["by_size"] = rows
    key = "100000" if "100000" in rows else str(sizes[-1])
    result.show(
        "match_ms_100k" if key == "100000" else f"match_ms_{key}", rows[key]["match_ms"], "ms"
    )
    if "1000000" in rows:
        result.show("match_ms_1M", rows["1000000"]["match_ms"], "ms")
        result.show(
            "growth_1k_to_1M", round(rows["1000000"]["match_ms"] / rows["1000"]["match_ms"], 1), "x"
        )
    result.met = rows[key]["match_ms"] < 20.0
    result.details.update(deepface_find(ctx))
    return result


def deepface_find(ctx: Context) -> dict:
    """DeepFace.find on a small real gallery, and the project on the same queries."""
    from attendance.bench.data import PEOPLE, decode, gallery_photos, val_photos
    from attendance.domain.matching import candidate_set, match_groups

    deepface = ctx.models.deepface
    per_person = 1 if ctx.quick else 5
    photos = gallery_photos()
    folder = Path(tempfile.mkdtemp(prefix="bench-find-"))
    try:
        for person in PEOPLE:
            (folder / person).mkdir()
            for path in photos[person][:per_person]:
                shutil.copy(path, folder / person / path.name)
        queries = [val_photos()[i * 5] for i in range(1 if ctx.quick else 5)]
        kwargs = dict(
            db_path=str(folder),
            model_name="Facenet",
            detector_backend="opencv",
            distance_metric="cosine",
            enforce_detection=False,
            silent=True,
        )
        t0 = time.perf_counter()
        deepface.find(img_path=decode(queries[0]), **kwargs)  # builds its representations
        build = time.perf_counter() - t0

        detector, embedder = ctx.models.detector("opencv"), ctx.models.embedder
        gallery, ids = [], []
        for person in PEOPLE:
            for path in photos[person][:per_person]:
                found = detector.detect(decode(path))
                if found:
                    gallery.append(max(found, key=lambda f: f.box.w * f.box.h).pixels)
                    ids.append(person)
        cands = candidate_set(embedder.embed(np.stack(gallery)), np.array(ids), set(ids))

        def ours(path):
            faces = detector.detect(decode(path))
            vectors = (
                embedder.embed(np.stack([f.pixels for f in faces]))
                if faces
                else np.zeros((0, 128), np.float32)
            )
            return match_groups(vectors, [len(faces)], cands, 0.45)[0]

        find_t, ours_t, right_find, right_ours = [], [], 0, 0
        for path in queries:  # interleaved, one query at a time
            t0 = time.perf_counter()
            found = deepface.find(img_path=decode(path), **kwargs)
            find_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = ours(path)
            ours_t.append(time.perf_counter() - t0)
            if found and len(found[0]):
                right_find += Path(found[0].iloc[0]["identity"]).parent.name == path.parent.name
            right_ours += any(m.student_id == path.parent.name for m in got)
        out = {
            "deepface_find_gallery_photos": per_person * len(PEOPLE),
            "deepface_find_build_s": round(build, 2),
            "deepface_find_per_query_ms": round(median(find_t) * 1000, 1),
            "pipeline_detect_embed_match_per_query_ms": round(median(ours_t) * 1000, 1),
            "deepface_find_correct": right_find,
            "pipeline_correct": right_ours,
            "queries": len(queries),
        }
        say(
            f"  {NAME}: DeepFace.find on {out['deepface_find_gallery_photos']} photos: "
            f"{out['deepface_find_per_query_ms']} ms/query (build {out['deepface_find_build_s']} s)"
            f"; project detect+embed+match {out['pipeline_detect_embed_match_per_query_ms']} ms"
        )
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
