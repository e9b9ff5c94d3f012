"""Open-set matching: one matrix product of all faces against the class's embeddings.

The work per job is one pass over the candidate embeddings (in blocks, so memory stays bounded
at any gallery size): a matrix product, a per-face maximum, and the (face, embedding) pairs
within the threshold. Only those few pairs are sorted for the assignment, so the cost does not
grow with faces x students.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from attendance.domain.schemas import MatchQuality

if TYPE_CHECKING:
    # threadpoolctl comes with the worker extra; it is imported when first used.
    from threadpoolctl import ThreadpoolController

# Gallery rows per block of the matrix product: 30 faces x 8192 rows of float32 is 1 MB, so the
# per-face maximum reads the block from cache (docs/performance.md, "Matching").
BLOCK_ROWS = 8192
# BLAS threads for the product. Against a small candidate set, one: on 2 shared cores a second
# OpenBLAS thread often waits for a busy core (another worker's), which costs far more than it
# gains. From LARGE_ROWS rows the product is long enough to share: every core (None).
# docs/performance.md, "Matching", has the measurements.
SMALL_THREADS = 1
LARGE_ROWS = 32768
LARGE_THREADS: int | None = None
_blas: ThreadpoolController | None = None


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length, so a dot product is the cosine similarity."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def warm_up() -> ThreadpoolController:
    """Find the BLAS library once, at worker start rather than in the first job."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas


def _blas_limit(rows: int) -> AbstractContextManager[object]:
    return warm_up().limit(
        limits=SMALL_THREADS if rows < LARGE_ROWS else LARGE_THREADS, user_api="blas"
    )


@dataclass(frozen=True)
class Match:
    student_id: str | None
    distance: float | None  # cosine distance to the nearest candidate; None if none exist


@dataclass(frozen=True)
class CandidateSet:
    """The embeddings a class may match: rows of the gallery, each with its student's code."""

    embeddings: np.ndarray  # (m, d) float32, L2-normalised, C-contiguous
    codes: np.ndarray  # (m,) int32 index into students
    students: np.ndarray  # (k,) str

    def __len__(self) -> int:
        return len(self.codes)


def candidate_set(
    gallery: np.ndarray, gallery_ids: np.ndarray, candidates: Iterable[str]
) -> CandidateSet:
    """The rows of ``gallery`` whose student is in ``candidates``."""
    candidates = set(candidates)
    gallery_ids = np.asarray(gallery_ids)
    if not candidates or len(gallery_ids) == 0:
        return CandidateSet(
            np.zeros((0, gallery.shape[1] if gallery.ndim == 2 else 0), np.float32),
            np.zeros(0, np.int32),
            np.array([], dtype=str),
        )
    students, codes = np.unique(gallery_ids, return_inverse=True)
    return select_candidates(gallery, codes.astype(np.int32), students, candidates)


def select_candidates(
    gallery: np.ndarray, codes: np.ndarray, students: np.ndarray, candidates: set[str]
) -> CandidateSet:
    """Like candidate_set, with the gallery's student codes already computed (GalleryCache)."""
    wanted = np.fromiter((i for i, s in enumerate(students) if s in candidates), dtype=np.int32)
    if len(wanted) == len(students):  # the whole gallery: no copy
        return CandidateSet(np.ascontiguousarray(gallery, dtype=np.float32), codes, students)
    keep = np.zeros(len(students), dtype=bool)
    keep[wanted] = True
    mask = keep[codes]
    return CandidateSet(
        np.ascontiguousarray(gallery[mask], dtype=np.float32), codes[mask], students
    )


def _agreeing(
    face_idx: np.ndarray, student: np.ndarray, dist: np.ndarray, need: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (face, student, distance) per pair whose student has ``need[student]`` embeddings
    within the threshold of that face; the distance is the farthest of those (the
    need[student]-th nearest): the evidence that many of the student's photos agree."""
    order = np.lexsort((dist, student, face_idx))
    face_idx, student, dist = face_idx[order], student[order], dist[order]
    starts = np.flatnonzero(
        np.r_[True, (face_idx[1:] != face_idx[:-1]) | (student[1:] != student[:-1])]
    )
    rank = np.arange(len(face_idx)) - np.repeat(starts, np.diff(np.r_[starts, len(face_idx)]))
    keep = rank == need[student] - 1
    return face_idx[keep], student[keep], dist[keep]


def _within(
    faces: np.ndarray, cands: CandidateSet, threshold: float
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each face's distance to its nearest candidate, and every (face, candidate row, distance)
    within ``threshold``: one pass over the candidates, block by block."""
    min_similarity = np.float32(1.0 - threshold)
    best = np.full(len(faces), -np.inf, dtype=np.float32)
    pair_face, pair_row, pair_sim = [], [], []
    with _blas_limit(len(cands)):
        for start in range(0, len(cands), BLOCK_ROWS):
            sim = faces @ cands.embeddings[start : start + BLOCK_ROWS].T  # (faces, rows)
            block_best = sim.max(axis=1)
            np.maximum(best, block_best, out=best)
            # Only the faces with something within the threshold in this block are searched.
            for i in np.flatnonzero(block_best >= min_similarity):
                r = np.flatnonzero(sim[i] >= min_similarity)
                pair_face.append(np.full(len(r), i, dtype=np.int64))
                pair_row.append(r + start)
                pair_sim.append(sim[i, r])
    nearest = 1.0 - best.astype(np.float64)
    if not pair_face:
        empty = np.zeros(0, dtype=np.int64)
        return nearest, (empty, empty, np.zeros(0, dtype=np.float64))
    return nearest, (
        np.concatenate(pair_face),
        np.concatenate(pair_row),
        1.0 - np.concatenate(pair_sim).astype(np.float64),
    )


def _assign(
    groups: Sequence[int],
    nearest: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    students: np.ndarray,
) -> list[list[Match]]:
    """Within each photo, give each face the closest student it was paired with, each student
    to one face at most. ``pairs``: (face, student code, distance), closest first."""
    face_idx, student, dist = pairs
    photo_of = np.repeat(np.arange(len(groups)), groups)
    pair_photo = photo_of[face_idx]
    out: list[list[Match]] = []
    offset = 0
    for p, count in enumerate(groups):
        result = [Match(None, float(nearest[offset + i])) for i in range(count)]
        taken_faces: set[int] = set()
        taken_students: set[int] = set()
        mine = pair_photo == p
        for face, code, d in zip(face_idx[mine].tolist(), student[mine].tolist(), dist[mine]):
            if face in taken_faces or code in taken_students:
                continue
            result[face - offset] = Match(str(students[code]), float(d))
            taken_faces.add(face)
            taken_students.add(code)
        out.append(result)
        offset += count
    return out


def match_groups(
    faces: np.ndarray,
    groups: Sequence[int],
    cands: CandidateSet,
    threshold: float,
    min_photos: int = 1,
) -> list[list[Match]]:
    """Match the faces of several photos at once: ``groups`` gives each photo's face count.

    A face is a student's when ``min_photos`` of the student's embeddings (all of them, if the
    student has fewer) are within ``threshold`` of it: one look-alike photo is not enough. Its
    distance is then the farthest of those. Within a photo each student is given to at most one
    face (the closest); a face that is nobody's is unknown (student_id None), never forced onto
    the nearest.
    """
    n = len(faces)
    assert sum(groups) == n, (groups, n)
    if n == 0:
        return [[] for _ in groups]
    if len(cands) == 0:
        return [[Match(None, None) for _ in range(g)] for g in groups]
    faces = np.ascontiguousarray(faces, dtype=np.float32)
    nearest, (face_idx, rows, dist) = _within(faces, cands, threshold)
    student = cands.codes[rows].astype(np.int64)
    if min_photos > 1 and len(face_idx):
        need = np.minimum(min_photos, np.bincount(cands.codes, minlength=len(cands.students)))
        face_idx, student, dist = _agreeing(face_idx, student, dist, need)
    # Closest first; ties broken by face then student, so the result is deterministic.
    order = np.lexsort((student, face_idx, dist))
    pairs = (face_idx[order], student[order], dist[order])
    return _assign(groups, nearest, pairs, cands.students)


def match_faces(
    faces: np.ndarray,
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    candidates: set[str],
    threshold: float,
    min_photos: int = 1,
) -> list[Match]:
    """Match the faces of ONE photo: each student at most once, the closest face wins.

    ``faces`` and ``gallery`` are L2-normalised float32 rows. A face farther than ``threshold``
    from every candidate student is unknown (student_id None), never forced onto the nearest.
    """
    if len(faces) == 0:
        return []
    return match_groups(
        faces, [len(faces)], candidate_set(gallery, gallery_ids, candidates), threshold, min_photos
    )[0]


# A face mark within this fraction of the threshold is strong; one beyond it, still within the
# threshold, is borderline: worth a teacher's look at the face (README, "The register").
STRONG_FRACTION = 0.8


def match_quality(distance: float | None, threshold: float) -> MatchQuality | None:
    """ "strong" or "borderline" for a face's distance against the match threshold; None when
    there is no distance (nothing matched, or a mark by hand without a face)."""
    if distance is None:
        return None
    return "strong" if distance <= STRONG_FRACTION * threshold else "borderline"
