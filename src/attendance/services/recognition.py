"""Recognise a class: detect every face of every photo, embed them all in batches, match, record.

Off the critical path: the next photo is read and decoded in a background thread while this one
is being detected, and annotated photos are drawn and stored by two threads (JPEG encoding and
file writes release the GIL). Embedding is not overlapped with detection: both use the 2 cores,
and overlapping them measured no faster (docs/performance.md, "Decoding and drawing off the
critical path"). Only a downscaled copy of each
photo (what annotation draws on) is kept until the end, so a job of many large photos does not
hold every original in memory.

Attendance is written first, each mark refusing a student erased since the job was asked for, so
a photo whose annotated copy cannot be stored costs that copy (the photo's result says why) and
never the register. The annotated photos follow, drawn without the students whose marks were
refused. An erasure after a mark finds this job through the mark and deletes the annotated
photos it lists; one that came after the mark but before the photos were stored cannot list
them, so once they are stored this job asks which marked students were erased since it was
asked for and draws their photos again without them (or deletes them if that fails). An erasure
after that check lists the stored photos itself. The stored result names students by id only.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from attendance.domain.errors import StudentErased
from attendance.domain.keys import annotated_key
from attendance.domain.matching import CandidateSet, Match, match_groups
from attendance.domain.schemas import (
    AttendanceRecord,
    Box,
    Evidence,
    FaceMatch,
    PhotoResult,
    RecognitionRequest,
    RecognitionResult,
)
from attendance.face.detect import DetectedFace, downscaled
from attendance.photos.annotate import ANNOTATED_MAX_SIDE, annotate
from attendance.photos.images import decode_bgr
from attendance.services.pipeline import FacePipeline
from attendance.stores.gallery import EMBEDDING_DIM

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Photos read and decoded ahead of the one being detected: bounds the memory a job holds.
PREFETCH = 2
UNREADABLE = "not a readable image"
ANNOTATION_NOT_STORED = "its annotated copy could not be stored; the attendance it shows stands"

Preview = tuple[np.ndarray, float]  # the copy annotation draws on, and its scale
_T = TypeVar("_T")


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


class _Stopwatch:
    """Seconds spent in its ``with`` blocks, summed over every thread that enters them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's start of its current block

    def __enter__(self) -> None:
        self._local.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        elapsed = time.perf_counter() - self._local.started
        with self._lock:
            self.seconds += elapsed

    @property
    def ms(self) -> float:
        return _ms(self.seconds)


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


@dataclass
class _Detections:
    """Per photo, in upload order: the faces found, the preview to draw on (None when the photo
    could not be read) and why it could not be read."""

    faces: list[list[DetectedFace]] = field(default_factory=list)
    previews: list[Preview | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)


def recognise(pipe: FacePipeline, req: RecognitionRequest, progress: Progress) -> RecognitionResult:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    version = pipe.gallery.refresh()
    roster = {s.student_id: s.name for s in pipe.records.list_students(req.class_id)}
    candidates = pipe.gallery.candidates(set(roster) - _consent_withdrawn(pipe, roster))
    timings["gallery"] = _ms(time.perf_counter() - started)

    found = _detect_all(pipe, req, progress, timings)
    embeddings = _embed(pipe, found.faces, timings)
    matches = _match(pipe, embeddings, found.faces, candidates, timings)
    photo_faces, best = _outcomes(found.faces, matches, roster)
    found.faces.clear()  # the crops: only the previews are needed from here on

    t0 = time.perf_counter()
    asked_at = req.requested_at or dt.datetime.now(dt.UTC)
    erased = _mark_attendance(pipe, req, roster, photo_faces, asked_at)
    timings["attendance"] = _ms(time.perf_counter() - t0)
    if erased:
        log.info("job %s: %d students erased while it ran are left out", req.job_id, len(erased))
        _forget(photo_faces, erased)
        for sid in erased:
            del best[sid]

    annotator = _Annotator(pipe, req.job_id, found.previews, photo_faces)
    t0 = time.perf_counter()
    annotator.draw(list(annotator.previews))
    timings["annotate"] = annotator.drawing.ms
    timings["store"] = annotator.storing.ms
    timings["annotate_store_wall"] = _ms(time.perf_counter() - t0)
    # Erased after their mark but possibly before the photos naming them were stored, where
    # the erasure could not find them: drawn again without them.
    late = pipe.records.erased_since(best, asked_at) if best else set()
    if late:
        log.info("job %s: %d students erased after their mark are left out", req.job_id, len(late))
        changed = _forget(photo_faces, late)
        for sid in late:
            del best[sid]
        annotator.redraw([i for i in changed if i in annotator.previews])
    annotator.previews.clear()

    photos = [
        PhotoResult(
            filename=upload.filename,
            faces=[f.model_copy(update={"name": None}) for f in photo_faces[i]],
            annotated_key=annotator.keys.get(i),
            annotation_error=annotator.failed.get(i),
            error=found.errors[i],
            captured_at=upload.captured_at,
        )
        for i, upload in enumerate(req.photos)
    ]
    outcomes = [face.outcome for faces in photo_faces for face in faces]
    timings["total"] = _ms(time.perf_counter() - started)
    return RecognitionResult(
        class_id=req.class_id,
        date=req.date,
        period=req.period,
        photos=photos,
        present=sorted(best),
        unknown_faces=outcomes.count("unknown"),
        unidentifiable_faces=outcomes.count("unidentifiable"),
        evidence=_evidence(photo_faces),
        model_version=version,
        timings=timings,
    )


def _consent_withdrawn(pipe: FacePipeline, student_ids: Iterable[str]) -> set[str]:
    """Those whose consent was withdrawn: read after the gallery, so a withdrawal whose erasure
    has not yet reached the gallery just read still keeps their faces from matching. One
    withdrawn while the job runs is left out by the erasure's tombstone when it is marked."""
    return {sid for sid, c in pipe.records.consents(student_ids).items() if not c.active}


def _prefetched(
    reader: ThreadPoolExecutor, load: Callable[[str], _T], keys: Sequence[str]
) -> Iterator[Future[_T]]:
    """The decoded photos in order, each read PREFETCH photos ahead of its turn."""
    pending = deque(reader.submit(load, key) for key in keys[:PREFETCH])
    for index in range(len(keys)):
        future = pending.popleft()
        if index + PREFETCH < len(keys):
            pending.append(reader.submit(load, keys[index + PREFETCH]))
        yield future


def _detect_all(
    pipe: FacePipeline, req: RecognitionRequest, progress: Progress, timings: dict[str, float]
) -> _Detections:
    """Detect the faces of every photo while the next ones are read and decoded."""
    decoding = _Stopwatch()

    def load(key: str) -> tuple[np.ndarray, Preview]:
        with decoding:
            bgr = decode_bgr(pipe.blobs.get(key))
            return bgr, downscaled(bgr, ANNOTATED_MAX_SIDE)

    # The copy annotation draws on is the one detection needs when they are of a size.
    shared_copy = pipe.detector.detect_max_side == ANNOTATED_MAX_SIDE

    found = _Detections()
    total = len(req.photos)
    decode_wait = detect_time = 0.0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as reader:
        photos = _prefetched(reader, load, [upload.key for upload in req.photos])
        for done, (upload, future) in enumerate(zip(req.photos, photos), start=1):
            t0 = time.perf_counter()
            bgr = None
            try:
                bgr, preview = future.result()
                t1 = time.perf_counter()
                decode_wait += t1 - t0
                faces = pipe.detector.detect(bgr, preview if shared_copy else None)
                detect_time += time.perf_counter() - t1
                found.previews.append(preview)
                found.errors.append(None)
            except Exception as exc:  # one bad photo must not sink the others
                log.warning("job %s: %s unreadable: %s", req.job_id, upload.filename, exc)
                faces = []
                found.previews.append(None)
                found.errors.append(UNREADABLE)
            del bgr
            found.faces.append(faces)
            progress(done, total)
    timings["decode"] = decoding.ms
    timings["decode_wait"] = _ms(decode_wait)
    timings["detect"] = _ms(detect_time)
    return found


def _embed(
    pipe: FacePipeline, detections: list[list[DetectedFace]], timings: dict[str, float]
) -> np.ndarray:
    """One batched FaceNet run over the identifiable faces of all photos."""
    t0 = time.perf_counter()
    pixels = [f.pixels for faces in detections for f in faces if f.pixels is not None]
    embeddings = (
        pipe.embedder.embed(np.stack(pixels))
        if pixels
        else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    )
    timings["embed"] = _ms(time.perf_counter() - t0)
    timings["faces"] = float(len(embeddings))
    return embeddings


def _match(
    pipe: FacePipeline,
    embeddings: np.ndarray,
    detections: list[list[DetectedFace]],
    candidates: CandidateSet,
    timings: dict[str, float],
) -> list[list[Match]]:
    """One pass over the class's embeddings for the identifiable faces of all photos."""
    t0 = time.perf_counter()
    matches = match_groups(
        embeddings,
        [sum(f.identifiable for f in faces) for faces in detections],
        candidates,
        pipe.settings.match_threshold,
        pipe.settings.match_min_photos,
    )
    timings["match"] = _ms(time.perf_counter() - t0)
    return matches


def _outcomes(
    detections: list[list[DetectedFace]], matches: list[list[Match]], roster: dict[str, str]
) -> tuple[list[list[FaceMatch]], dict[str, float]]:
    """What each face is (recognised, unknown or unidentifiable), and the distance of each
    recognised student's closest face."""
    photo_faces: list[list[FaceMatch]] = []
    best: dict[str, float] = {}
    for faces, photo_matches in zip(detections, matches):
        results = []
        next_match = iter(photo_matches)
        for face in faces:
            if not face.identifiable:
                results.append(_unidentifiable(face))
                continue
            match = next(next_match)
            results.append(_matched(face, match, roster))
            sid, distance = match.student_id, match.distance
            if sid is not None and distance is not None and distance < best.get(sid, np.inf):
                best[sid] = distance
        photo_faces.append(results)
    return photo_faces, best


def _unidentifiable(face: DetectedFace) -> FaceMatch:
    return FaceMatch(
        box=face.box,
        student_id=None,
        name=None,
        distance=None,
        outcome="unidentifiable",
        reason=face.reason,
    )


def _matched(face: DetectedFace, match: Match, roster: dict[str, str]) -> FaceMatch:
    sid = match.student_id
    return FaceMatch(
        box=face.box,
        student_id=sid,
        name=roster.get(sid) if sid else None,
        distance=None if match.distance is None else round(match.distance, 4),
        outcome="recognised" if sid else "unknown",
    )


class _Annotator:
    """Draws the outcomes on the photos' previews and stores them, two photos at a time (JPEG
    encoding and file writes release the GIL)."""

    def __init__(
        self,
        pipe: FacePipeline,
        job_id: str,
        previews: list[Preview | None],
        photo_faces: list[list[FaceMatch]],
    ):
        self.pipe = pipe
        self.job_id = job_id
        self.previews = {i: p for i, p in enumerate(previews) if p is not None}
        self.photo_faces = photo_faces
        self.keys: dict[int, str] = {}  # photo index -> its stored annotated photo
        self.failed: dict[int, str] = {}  # photo index -> why its annotated copy is missing
        self.drawing = _Stopwatch()
        self.storing = _Stopwatch()

    def draw(self, indices: list[int]) -> None:
        """Draw and store the photos; one that cannot be stored is noted in ``failed``."""
        with ThreadPoolExecutor(
            max_workers=min(2, max(1, len(indices))), thread_name_prefix="annotate"
        ) as drawers:
            for index, key in zip(indices, drawers.map(self._draw_and_store, indices)):
                if key is None:
                    self.keys.pop(index, None)
                else:
                    self.keys[index] = key
                    self.failed.pop(index, None)

    def redraw(self, indices: list[int]) -> None:
        """Draw the photos again; a stored copy that cannot be replaced is deleted, since it
        shows what must not be shown any more."""
        self.draw(indices)
        for index in indices:
            if index in self.failed:
                self.pipe.blobs.delete(annotated_key(self.job_id, index))

    def _draw_and_store(self, index: int) -> str | None:
        image, scale = self.previews[index]
        with self.drawing:
            jpeg = annotate(image, [_scaled(f, scale) for f in self.photo_faces[index]])
        key = annotated_key(self.job_id, index)
        try:
            with self.storing:
                self.pipe.blobs.put(key, jpeg, "image/jpeg")
        except Exception as exc:  # the register is written already: only this copy is lost
            log.warning("job %s: annotated photo %d not stored: %s", self.job_id, index, exc)
            self.failed[index] = ANNOTATION_NOT_STORED
            return None
        return key


def _mark_attendance(
    pipe: FacePipeline,
    req: RecognitionRequest,
    roster: dict[str, str],
    photo_faces: list[list[FaceMatch]],
    asked_at: dt.datetime,
) -> set[str]:
    """Mark the recognised students present, each with their best face as the evidence; return
    those erased since the job was asked for (their marks are refused)."""
    seen_at = dt.datetime.now(dt.UTC)
    erased = set()
    for seen in _evidence(photo_faces):
        sid = seen.student_id
        # Conditional insert: a second photo, a second upload or a redelivered task adds nothing.
        try:
            pipe.records.mark_present(
                AttendanceRecord(
                    class_id=req.class_id,
                    date=req.date,
                    period=req.period,
                    student_id=sid,
                    name=roster[sid],
                    first_seen_at=seen_at,
                    distance=seen.distance,
                    job_id=req.job_id,
                    photo=seen.photo,
                    face=seen.face,
                    box=photo_faces[seen.photo][seen.face].box,
                    captured_at=req.photos[seen.photo].captured_at,
                ),
                not_erased_since=asked_at,
            )
        except StudentErased:
            erased.add(sid)
    return erased


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


def _evidence(photo_faces: list[list[FaceMatch]]) -> list[Evidence]:
    """A student found in any photo is present; the best face among them is the evidence."""
    evidence: dict[str, Evidence] = {}
    for i, faces in enumerate(photo_faces):
        for k, face in enumerate(faces):
            sid, distance = face.student_id, face.distance
            if sid is None or distance is None:
                continue
            if sid not in evidence or distance < evidence[sid].distance:
                evidence[sid] = Evidence(student_id=sid, photo=i, face=k, distance=distance)
    return [evidence[sid] for sid in sorted(evidence)]
