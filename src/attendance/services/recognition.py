"""Recognise a class: detect every face of every photo, embed them all in batches, match, record.

Off the critical path: the next photo is read and decoded in a background thread while this one
is being detected, and annotated photos are drawn and stored by two threads (JPEG encoding and
file writes release the GIL). Embedding is not overlapped with detection: both use the 2 cores,
and overlapping them measured no faster (docs/performance.md). Only a downscaled copy of each
photo (what annotation draws on) is kept until the end, so a job of many large photos does not
hold every original in memory.

Attendance is written after the annotated photos are stored, each mark refusing a student erased
since the job was asked for. So an erasure either comes after a mark, and then finds this job
and its photos through the mark, or before it, and then this job draws the photos again without
that student. The stored result names students by id only.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from attendance.domain.errors import StudentErased
from attendance.domain.keys import annotated_key
from attendance.domain.matching import match_groups
from attendance.domain.schemas import (
    AttendanceRecord,
    Box,
    Evidence,
    FaceMatch,
    PhotoResult,
    RecognitionRequest,
    RecognitionResult,
)
from attendance.photos.annotate import ANNOTATED_MAX_SIDE, annotate
from attendance.photos.images import decode_bgr
from attendance.services.pipeline import FacePipeline

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Photos read and decoded ahead of the one being detected: bounds the memory a job holds.
PREFETCH = 2


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def _preview(bgr: np.ndarray, max_side: int = ANNOTATED_MAX_SIDE) -> tuple[np.ndarray, float]:
    """The copy annotation draws on (annotate() would downscale to this size anyway)."""
    import cv2

    height, width = bgr.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return bgr, 1.0
    small = cv2.resize(
        bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
    )
    return small, scale


def _scaled(face: FaceMatch, scale: float) -> FaceMatch:
    if scale == 1.0:
        return face
    b = face.box
    return face.model_copy(
        update={
            "box": Box(
                x=round(b.x * scale),
                y=round(b.y * scale),
                w=round(b.w * scale),
                h=round(b.h * scale),
            )
        }
    )


def recognise(pipe: FacePipeline, req: RecognitionRequest, progress: Progress) -> RecognitionResult:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    version = pipe.gallery.refresh()
    roster = {s.student_id: s.name for s in pipe.records.list_students(req.class_id)}
    candidates = pipe.gallery.candidates(roster)
    timings["gallery"] = _ms(time.perf_counter() - started)

    decode_work = [0.0]

    def load(key: str) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return decode_bgr(pipe.blobs.get(key))
        finally:
            decode_work[0] += time.perf_counter() - t0

    previews: list[tuple[np.ndarray, float] | None] = []
    detections = []
    errors: list[str | None] = []
    total = len(req.photos)
    decode_wait = detect_time = 0.0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as reader:
        pending: list[Future] = [reader.submit(load, u.key) for u in req.photos[:PREFETCH]]
        for done, upload in enumerate(req.photos, start=1):
            future = pending.pop(0)
            if done - 1 + PREFETCH < total:
                pending.append(reader.submit(load, req.photos[done - 1 + PREFETCH].key))
            t0 = time.perf_counter()
            bgr = None
            try:
                bgr = future.result()
                t1 = time.perf_counter()
                decode_wait += t1 - t0
                faces = pipe.detector.detect(bgr)
                detect_time += time.perf_counter() - t1
                previews.append(_preview(bgr))
                errors.append(None)
            except Exception as exc:  # one bad photo must not sink the others
                log.warning("job %s: %s unreadable: %s", req.job_id, upload.filename, exc)
                faces = []
                previews.append(None)
                errors.append("not a readable image")
            del bgr
            detections.append(faces)
            progress(done, total)
    timings["decode"] = _ms(decode_work[0])
    timings["decode_wait"] = _ms(decode_wait)
    timings["detect"] = _ms(detect_time)

    # One batched FaceNet run over the faces of all photos.
    t0 = time.perf_counter()
    all_pixels = [f.pixels for faces in detections for f in faces if f.identifiable]
    embeddings = (
        pipe.embedder.embed(np.stack(all_pixels))
        if all_pixels
        else np.zeros((0, 128), dtype=np.float32)
    )
    del all_pixels
    timings["embed"] = _ms(time.perf_counter() - t0)
    timings["faces"] = float(len(embeddings))

    # One pass over the class's embeddings for the faces of all photos.
    t0 = time.perf_counter()
    matches = match_groups(
        embeddings,
        [sum(f.identifiable for f in faces) for faces in detections],
        candidates,
        pipe.settings.match_threshold,
        pipe.settings.match_min_photos,
    )
    timings["match"] = _ms(time.perf_counter() - t0)

    photo_faces: list[list[FaceMatch]] = []
    best: dict[str, float] = {}
    unknown = unidentifiable = 0
    for faces, photo_matches in zip(detections, matches):
        face_results = []
        next_match = iter(photo_matches)
        for face in faces:
            if not face.identifiable:
                face_results.append(
                    FaceMatch(
                        box=face.box,
                        student_id=None,
                        name=None,
                        distance=None,
                        outcome="unidentifiable",
                        reason=face.reason,
                    )
                )
                unidentifiable += 1
                continue
            match = next(next_match)
            sid = match.student_id
            face_results.append(
                FaceMatch(
                    box=face.box,
                    student_id=sid,
                    name=roster.get(sid) if sid else None,
                    distance=None if match.distance is None else round(match.distance, 4),
                    outcome="recognised" if sid else "unknown",
                )
            )
            if sid is None:
                unknown += 1
            elif match.distance < best.get(sid, np.inf):
                best[sid] = match.distance
        photo_faces.append(face_results)
    del detections

    annotate_work = [0.0]
    store_work = [0.0]
    keys: dict[int, str] = {}

    def draw_and_store(index: int) -> str:
        image, scale = previews[index]
        t0 = time.perf_counter()
        jpeg = annotate(image, [_scaled(f, scale) for f in photo_faces[index]])
        t1 = time.perf_counter()
        key = annotated_key(req.job_id, index)
        pipe.blobs.put(key, jpeg, "image/jpeg")
        annotate_work[0] += t1 - t0
        store_work[0] += time.perf_counter() - t1
        return key

    def draw_all(indices: list[int]) -> None:
        with ThreadPoolExecutor(
            max_workers=min(2, max(1, len(indices))), thread_name_prefix="annotate"
        ) as drawers:
            keys.update(zip(indices, drawers.map(draw_and_store, indices)))

    t0 = time.perf_counter()
    draw_all([i for i, p in enumerate(previews) if p is not None])
    timings["annotate"] = _ms(annotate_work[0])
    timings["store"] = _ms(store_work[0])
    timings["annotate_store_wall"] = _ms(time.perf_counter() - t0)

    t0 = time.perf_counter()
    asked_at = req.requested_at or dt.datetime.now(dt.UTC)
    seen_at = dt.datetime.now(dt.UTC)
    erased = set()
    for sid, distance in sorted(best.items()):
        # Conditional insert: a second photo, a second upload or a redelivered task adds nothing.
        try:
            pipe.records.mark_present(
                AttendanceRecord(
                    class_id=req.class_id,
                    date=req.date,
                    student_id=sid,
                    name=roster[sid],
                    first_seen_at=seen_at,
                    distance=round(float(distance), 4),
                    job_id=req.job_id,
                ),
                not_erased_since=asked_at,
            )
        except StudentErased:
            erased.add(sid)
    timings["attendance"] = _ms(time.perf_counter() - t0)
    if erased:
        log.info("job %s: %d students erased while it ran are left out", req.job_id, len(erased))
        redraw = _forget(photo_faces, erased)
        unknown += sum(redraw.values())
        for sid in erased:
            del best[sid]
        draw_all([i for i in redraw if i in keys])
    previews.clear()

    # A student found in any photo is present; the best face among them is the evidence.
    evidence: dict[str, Evidence] = {}
    for i, faces in enumerate(photo_faces):
        for k, face in enumerate(faces):
            sid = face.student_id
            if sid and (sid not in evidence or face.distance < evidence[sid].distance):
                evidence[sid] = Evidence(student_id=sid, photo=i, face=k, distance=face.distance)
    photos = [
        PhotoResult(
            filename=upload.filename,
            faces=[f.model_copy(update={"name": None}) for f in photo_faces[i]],
            annotated_key=keys.get(i),
            error=errors[i],
        )
        for i, upload in enumerate(req.photos)
    ]
    timings["total"] = _ms(time.perf_counter() - started)
    return RecognitionResult(
        class_id=req.class_id,
        date=req.date,
        photos=photos,
        present=sorted(best),
        unknown_faces=unknown,
        unidentifiable_faces=unidentifiable,
        evidence=[evidence[sid] for sid in sorted(evidence)],
        model_version=version,
        timings=timings,
    )


def _forget(photo_faces: list[list[FaceMatch]], erased: set[str]) -> dict[int, int]:
    """Turn the faces of erased students into unknown faces; return {photo: faces changed}."""
    changed: dict[int, int] = {}
    for index, faces in enumerate(photo_faces):
        for k, face in enumerate(faces):
            if face.student_id in erased:
                faces[k] = face.model_copy(
                    update={
                        "student_id": None,
                        "name": None,
                        "distance": None,
                        "outcome": "unknown",
                    }
                )
                changed[index] = changed.get(index, 0) + 1
    return changed
