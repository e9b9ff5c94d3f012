"""Stand-ins for the face models and Redis, so the services run in fast tests on real stores.

A "photo" is a small generated PNG: a black background with one coloured square per face. The
square's width is the face's width and its colour says who it is and how it looks, so the fake
detector reads back exactly what the test drew, as ``DetectedFace`` objects made the way the real
detector makes them (too small, turned too far or too blurred: found but not identifiable). The
fake embedder gives each person a fixed unit vector, plus a little noise per photo of them.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from attendance.config.settings import Settings
from attendance.domain.errors import NotFound
from attendance.domain.keys import upload_key
from attendance.domain.matching import normalise
from attendance.domain.pipelines import pipeline_id
from attendance.domain.schemas import Box, JobView, Upload
from attendance.face.detect import (
    BLURRED,
    ENROLL_MAX_TURN,
    ENROLL_MIN_SHARPNESS,
    MAX_TURN,
    MIN_SHARPNESS,
    TOO_SMALL,
    TURNED,
    DetectedFace,
)
from attendance.services.pipeline import FacePipeline
from attendance.stores.blob import BlobStore, open_blob_store
from attendance.stores.gallery import EMBEDDING_DIM, GalleryCache, GalleryRepository
from attendance.stores.jobs import _UNCHANGED, FINISHED, JobStore
from attendance.stores.records import open_records

# clear: frontal and sharp. turned / soft: still matched in a class photo, but refused at
# enrollment (its limits are stricter). profile / blurred: not identifiable at all. unsure: the
# detector is not confident enough for an enrollment photo.
Look = Literal["clear", "turned", "soft", "profile", "blurred", "unsure"]
LOOKS: tuple[Look, ...] = ("clear", "turned", "soft", "profile", "blurred", "unsure")
GAP = 4  # black pixels between two faces and around them

_TURN = {"turned": (ENROLL_MAX_TURN + MAX_TURN) / 2, "profile": MAX_TURN * 1.5}
_SHARPNESS = {"soft": (MIN_SHARPNESS + ENROLL_MIN_SHARPNESS) / 2, "blurred": MIN_SHARPNESS / 2}


@dataclass(frozen=True)
class Face:
    """One synthetic face: who (1-255), how wide in pixels, how it looks, and which photo of
    that person it is (0-255: each gives a slightly different embedding)."""

    person: int
    width: int = 96
    look: Look = "clear"
    shot: int = 0


def photo(*faces: Face) -> bytes:
    """A PNG showing ``faces`` left to right (none: an empty room)."""
    height = max([f.width for f in faces] + [8]) + 2 * GAP
    width = sum(f.width + GAP for f in faces) + GAP
    bgr = np.zeros((height, max(width, 8), 3), dtype=np.uint8)
    x = GAP
    for face in faces:
        bgr[GAP : GAP + face.width, x : x + face.width] = (
            face.person,
            LOOKS.index(face.look) + 1,
            face.shot,
        )
        x += face.width + GAP
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(out, format="PNG")
    return out.getvalue()


class FakeDetector:
    """Finds the squares photo() drew; decides what is identifiable as FaceDetector does."""

    # Never the preview's size: the fake always finds the squares on the photo itself.
    detect_max_side = 0

    def __init__(self, min_face_px: int):
        self.min_face_px = min_face_px
        self.photos_seen = 0

    def width(self, face: DetectedFace) -> float:
        return float(face.box.w)

    def detect(self, bgr: np.ndarray, copy: object = None) -> list[DetectedFace]:
        self.photos_seen += 1
        row = bgr[GAP]
        lit = row.any(axis=1)
        edges = np.flatnonzero(np.diff(np.r_[0, lit.astype(np.int8), 0]))
        return [self._face(row[x0], x0, x1 - x0) for x0, x1 in zip(edges[::2], edges[1::2])]

    def _face(self, colour: np.ndarray, x: int, width: int) -> DetectedFace:
        person, look_code, shot = (int(v) for v in colour)
        look = LOOKS[look_code - 1]
        box = Box(x=int(x), y=GAP, w=width, h=width)
        confidence = 0.5 if look == "unsure" else 0.99
        if width < self.min_face_px:
            return DetectedFace(box, confidence, None, reason=TOO_SMALL)
        turn = _TURN.get(look, 0.0)
        sharpness = _SHARPNESS.get(look, 50.0)
        reason = TURNED if abs(turn) > MAX_TURN else BLURRED if sharpness < MIN_SHARPNESS else None
        pixels = np.empty((160, 160, 3), dtype=np.float32)
        pixels[:] = np.array([person, look_code, shot], dtype=np.float32) / 255.0
        return DetectedFace(
            box, confidence, None if reason else pixels, None, reason, turn, sharpness
        )


class FakeEmbedder:
    """FaceNet's stand-in: a fixed unit vector per person, plus ``noise`` (a length) in a
    direction fixed per photo of them. ``lookalikes`` {person: (resembles, cosine)} makes a
    person whose vector has that cosine similarity with another's."""

    def __init__(self, noise: float = 0.1, lookalikes: dict[int, tuple[int, float]] | None = None):
        self.noise = noise
        self.lookalikes = lookalikes or {}
        self.batches: list[int] = []  # the size of each embed() call

    @staticmethod
    def _direction(*seed: int) -> np.ndarray:
        return normalise(np.random.default_rng(seed).normal(size=(1, EMBEDDING_DIM)))[0]

    def person(self, person: int) -> np.ndarray:
        """The unit vector of a person (what every photo of them is near)."""
        own = self._direction(person)
        if person not in self.lookalikes:
            return own
        other, cosine = self.lookalikes[person]
        base = self._direction(other)
        rest = normalise((own - (own @ base) * base)[None])[0]
        return cosine * base + np.sqrt(1.0 - cosine**2) * rest

    def embed(self, faces: np.ndarray) -> np.ndarray:
        self.batches.append(len(faces))
        rows = []
        for pixels in faces:
            person, _, shot = (round(float(v) * 255) for v in pixels[0, 0])
            rows.append(self.person(person) + self.noise * self._direction(person, 1000 + shot))
        return normalise(np.array(rows, dtype=np.float32).reshape(-1, EMBEDDING_DIM))


class FakeJobStore(JobStore):
    """JobStore's bookkeeping on a dict instead of Redis."""

    def __init__(self, ttl_seconds: int = 3600):
        self.ttl = ttl_seconds
        self.jobs: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.leases: dict[str, str] = {}
        self.tasks: dict = {}

    def _save(self, job: JobView) -> None:
        self.jobs[job.job_id] = job.model_dump_json()

    def get(self, job_id: str) -> JobView:
        if job_id not in self.jobs:
            raise NotFound(f"no job {job_id!r}", code="job_not_found")
        return JobView.model_validate_json(self.jobs[job_id])

    def finished(self, job_id: str) -> bool:
        return job_id in self.jobs and self.get(job_id).state in FINISHED

    def _rewrite(self, job_id, change, *, keep_ttl):
        job = self.get(job_id)
        answer = change(job)
        if answer is not _UNCHANGED:
            job.updated_at = dt.datetime.now(dt.UTC)
            self._save(job)
        return answer

    def count_attempt(self, job_id: str) -> int:
        self.attempts[job_id] = self.attempts.get(job_id, 0) + 1
        return self.attempts[job_id]

    def delete(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def _track(self, job_id: str) -> None:
        pass

    def _closed(self, job_id: str) -> None:
        self.tasks.pop(job_id, None)

    # Leases without time: held until released or handed over.
    def take_lease(self, job_id, holder, seconds):
        current = self.leases.get(job_id)
        if current is None or current.startswith("retry:"):
            self.leases[job_id] = holder
            return None
        return current

    def renew_lease(self, job_id, holder, seconds):
        return self.leases.setdefault(job_id, holder) == holder

    def hand_over_lease(self, job_id, holder, seconds):
        if self.leases.get(job_id) != holder:
            return False
        self.leases[job_id] = "retry:" + holder
        return True

    def release_lease(self, job_id, holder):
        if self.leases.get(job_id) == holder:
            del self.leases[job_id]

    def remember_task(self, job_id, task):
        self.tasks[job_id] = task

    def stored_task(self, job_id):
        return self.tasks.get(job_id)


def settings_for(tmp_path, **overrides) -> Settings:
    """Every setting at its default (whatever the environment says), the stores in tmp_path."""
    return Settings.model_construct(
        blob_store_url=f"file://{tmp_path}/store",
        records_url=f"sqlite:///{tmp_path}/attendance.db",
        **overrides,
    )


def fake_pipeline(tmp_path, embedder: FakeEmbedder | None = None, **settings) -> FacePipeline:
    """A worker's pipeline on real local stores with the fake detector and embedder."""
    s = settings_for(tmp_path, **settings)
    blobs = open_blob_store(s.blob_store_url, s)
    records = open_records(s.records_url, s)
    repo = GalleryRepository(blobs, records)
    return FacePipeline(
        settings=s,
        blobs=blobs,
        records=records,
        jobs=FakeJobStore(),
        gallery_repo=repo,
        gallery=GalleryCache(repo, pipeline_id(s)),
        detector=FakeDetector(s.min_face_px),  # type: ignore[arg-type]
        embedder=embedder or FakeEmbedder(),  # type: ignore[arg-type]
    )


def store_uploads(blobs: BlobStore, job_id: str, photos: dict[str, bytes]) -> list[Upload]:
    """Store photos as the API stores a job's uploads: {file name: bytes} -> the uploads."""
    uploads = []
    for index, (filename, data) in enumerate(photos.items()):
        key = upload_key(job_id, index, "png")
        blobs.put(key, data, "image/png")
        uploads.append(Upload(key=key, filename=filename))
    return uploads


def ago(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(**delta)


@contextmanager
def loading_no_tensorflow() -> Iterator[None]:
    """Fails the block if it loaded TensorFlow (unless something before it had already)."""
    before = "tensorflow" in sys.modules
    yield
    assert before or "tensorflow" not in sys.modules, "the fakes loaded TensorFlow"


def student_traces(root, needle: str) -> list[str]:
    """Every stored file whose name or bytes hold ``needle`` (UTF-8, or UTF-32 as numpy
    stores strings)."""
    patterns = [needle.encode(), needle.encode("utf-32-le")]
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file()
        and (needle in str(path.relative_to(root)) or any(p in path.read_bytes() for p in patterns))
    )
