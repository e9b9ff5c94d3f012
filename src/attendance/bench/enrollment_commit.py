"""Figure 5: the cost of enrolling one student versus the size of the gallery.

Each gallery (N students, 5 synthetic embeddings each) is built by one bulk commit (not timed),
then a worker's GalleryCache loads it. Timed, interleaved across the sizes: one more student's
GalleryRepository.commit (5 embeddings) plus GalleryCache.refresh of that warm cache, on the
embedded stores (files + SQLite, fsync on every write).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from attendance.bench.common import Context, Result, median, say

NAME = "enrollment_commit"
TITLE = "Enrollment commit + refresh vs gallery size"
GOAL = "100k-student gallery within 2x of a 100-student one"
PIPELINE = "Facenet/opencv-v1"
PER_STUDENT = 5


def commit(repo, vectors: np.ndarray, ids: list[str], segment_id: str) -> None:
    """Commit ``vectors`` as one segment of PIPELINE, as an enrollment does."""
    repo.commit(
        vectors,
        ids,
        segment_id=segment_id,
        pipeline=PIPELINE,
        model_name="Facenet",
        detector="opencv",
        metric="cosine",
        threshold=0.45,
    )


def open_gallery(folder: Path):
    """A GalleryRepository on the embedded stores (files + SQLite) in ``folder``."""
    from attendance.stores.blob import LocalBlobStore
    from attendance.stores.gallery import GalleryRepository
    from attendance.stores.records import SqliteRecords

    return GalleryRepository(LocalBlobStore(folder / "store"), SqliteRecords(folder / "db.sqlite"))


def bulk_gallery(folder: Path, students: int, rng: np.random.Generator):
    """A gallery of ``students`` students, PER_STUDENT synthetic embeddings each, built by one
    bulk commit in ``folder``: (its repository, the commit's seconds)."""
    repo = open_gallery(folder)
    vectors = rng.standard_normal((students * PER_STUDENT, 128), dtype=np.float32)
    ids = [f"s{i // PER_STUDENT:07d}" for i in range(students * PER_STUDENT)]
    t0 = time.perf_counter()
    commit(repo, vectors, ids, "bulk")
    return repo, time.perf_counter() - t0


def run(ctx: Context) -> Result:
    from attendance.stores.gallery import GalleryCache

    result = Result(NAME, TITLE, GOAL)
    sizes = [100, 2_000] if ctx.quick else [100, 1_000, 10_000, 100_000]
    rounds = 3 if ctx.quick else 9
    rng = np.random.default_rng(3)
    root = Path(tempfile.mkdtemp(prefix="bench-gallery-"))
    try:
        galleries = {}
        for size in sizes:
            repo, bulk = bulk_gallery(root / str(size), size, rng)
            cache = GalleryCache(repo, PIPELINE)
            t0 = time.perf_counter()
            cache.refresh()
            cold = time.perf_counter() - t0
            galleries[size] = (
                repo,
                cache,
                {"bulk_commit_s": round(bulk, 3), "cold_load_s": round(cold, 3)},
            )
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for r in range(rounds):
            for size in sizes:
                repo, cache, _ = galleries[size]
                new = rng.standard_normal((PER_STUDENT, 128), dtype=np.float32)
                t0 = time.perf_counter()
                commit(repo, new, [f"new{r}"] * PER_STUDENT, f"enroll-{r}")
                cache.refresh()
                times[size].append(time.perf_counter() - t0)
                assert cache.embeddings.shape[0] == (size + r + 1) * PER_STUDENT
        rows = {}
        for size in sizes:
            rows[str(size)] = {
                "median_ms": round(median(times[size]) * 1000, 2),
                "max_ms": round(max(times[size]) * 1000, 2),
                **galleries[size][2],
            }
            say(
                f"  {NAME}: {size:>7,} students: enroll one = {rows[str(size)]['median_ms']} ms "
                f"median, {rows[str(size)]['max_ms']} ms max"
            )
        small, large = str(sizes[0]), str(sizes[-1])
        ratio = rows[large]["median_ms"] / rows[small]["median_ms"]
        result.show(f"enroll_ms_{small}", rows[small]["median_ms"], "ms")
        result.show(f"enroll_ms_{large}", rows[large]["median_ms"], "ms")
        result.show("ratio_large_to_small", round(ratio, 2), "x")
        result.met = ratio <= 2.0
        result.details["by_size"] = rows
        result.details["rounds"] = rounds
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result
