"""Open-set matching: one matrix product of all faces against the class's embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    student_id: str | None
    distance: float | None  # cosine distance to the nearest candidate; None if none exist


def match_faces(
    faces: np.ndarray,
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    candidates: set[str],
    threshold: float,
) -> list[Match]:
    """Match the faces of ONE photo: each student at most once, the closest face wins.

    ``faces`` and ``gallery`` are L2-normalised float32 rows. A face farther than ``threshold``
    from every candidate student is unknown (student_id None), never forced onto the nearest.
    """
    n = len(faces)
    if n == 0:
        return []
    mask = np.isin(gallery_ids, list(candidates)) if candidates else np.zeros(len(gallery_ids), bool)
    if not mask.any():
        return [Match(None, None) for _ in range(n)]
    emb, ids = gallery[mask], gallery_ids[mask]
    students, inverse = np.unique(ids, return_inverse=True)
    dist = 1.0 - faces.astype(np.float32) @ emb.T  # (faces, embeddings)
    # Best distance per (face, student): min over that student's embeddings.
    by_student = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[by_student], np.arange(len(students)))
    per_student = np.minimum.reduceat(dist[:, by_student], starts, axis=1)

    nearest = per_student.min(axis=1)
    result: list[Match] = [Match(None, float(d)) for d in nearest]
    # Greedy assignment by ascending distance: a student appears once per photo.
    taken_faces: set[int] = set()
    taken_students: set[int] = set()
    order = np.argsort(per_student, axis=None)
    for flat in order:
        i, j = divmod(int(flat), len(students))
        d = float(per_student[i, j])
        if d > threshold:
            break
        if i in taken_faces or j in taken_students:
            continue
        result[i] = Match(str(students[j]), d)
        taken_faces.add(i)
        taken_students.add(j)
    return result
