"""Recognise a class: detect every face of every photo, embed them all in batches, match, record."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

import numpy as np

from common.annotate import annotate
from common.images import decode_bgr
from common.keys import annotated_key
from common.matching import match_faces
from common.pipeline import FacePipeline
from common.schemas import (
    AttendanceRecord, FaceMatch, PhotoResult, RecognitionRequest, RecognitionResult,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def recognise(pipe: FacePipeline, req: RecognitionRequest, progress: Progress) -> RecognitionResult:
    version = pipe.gallery.refresh()
    roster = {s.student_id: s.name for s in pipe.records.list_students(req.class_id)}

    decoded: list[np.ndarray | None] = []
    detections = []
    errors: list[str | None] = []
    total = len(req.photos)
    for done, upload in enumerate(req.photos, start=1):
        try:
            bgr = decode_bgr(pipe.blobs.get(upload.key))
            faces = pipe.detector.detect(bgr)
            errors.append(None)
        except Exception as exc:  # one bad photo must not sink the others
            log.warning("job %s: %s unreadable: %s", req.job_id, upload.filename, exc)
            bgr, faces = None, []
            errors.append("not a readable image")
        decoded.append(bgr)
        detections.append(faces)
        progress(done, total)

    # One batched FaceNet run over the faces of all photos.
    all_pixels = [f.pixels for faces in detections for f in faces]
    embeddings = pipe.embedder.embed(np.stack(all_pixels)) if all_pixels else np.zeros((0, 128))

    photos: list[PhotoResult] = []
    best: dict[str, float] = {}
    unknown = 0
    offset = 0
    for index, (upload, bgr, faces, error) in enumerate(
        zip(req.photos, decoded, detections, errors)
    ):
        vectors = embeddings[offset:offset + len(faces)]
        offset += len(faces)
        matches = match_faces(
            vectors, pipe.gallery.embeddings, pipe.gallery.student_ids, set(roster),
            pipe.settings.match_threshold,
        )
        face_results = []
        for face, match in zip(faces, matches):
            sid = match.student_id
            face_results.append(FaceMatch(
                box=face.box, student_id=sid, name=roster.get(sid) if sid else None,
                distance=None if match.distance is None else round(match.distance, 4),
            ))
            if sid is None:
                unknown += 1
            elif match.distance < best.get(sid, np.inf):
                best[sid] = match.distance
        key = None
        if bgr is not None:
            key = annotated_key(req.job_id, index)
            pipe.blobs.put(key, annotate(bgr, face_results), "image/jpeg")
        photos.append(PhotoResult(filename=upload.filename, faces=face_results,
                                  annotated_key=key, error=error))

    seen_at = dt.datetime.now(dt.timezone.utc)
    for sid, distance in sorted(best.items()):
        # Conditional insert: a second photo, a second upload or a redelivered task adds nothing.
        pipe.records.mark_present(AttendanceRecord(
            class_id=req.class_id, date=req.date, student_id=sid, name=roster[sid],
            first_seen_at=seen_at, distance=round(float(distance), 4), job_id=req.job_id,
        ))
    return RecognitionResult(
        class_id=req.class_id, date=req.date, photos=photos, present=sorted(best),
        unknown_faces=unknown, model_version=version,
    )
