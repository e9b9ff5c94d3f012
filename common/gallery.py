"""The gallery ("the model"): enrolled embeddings as immutable, versioned objects.

A version is a manifest listing immutable segments (one per enrollment). Committing writes one new
segment and one small manifest, then moves the pointer in the records store by compare-and-set, so
the cost follows the new photos, not the gallery size, and concurrent commits never lose each
other. Readers cache segments by key, so picking up a new version loads only what is new.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import uuid
from dataclasses import dataclass, field

import numpy as np

from common.blobstore import BlobStore
from common.errors import GalleryConflict
from common.records import GalleryPointer, RecordsStore

log = logging.getLogger(__name__)

EMBEDDING_DIM = 128
MAX_COMMIT_ATTEMPTS = 20


@dataclass(frozen=True)
class Segment:
    key: str
    embeddings: np.ndarray  # (n, d) float32, L2-normalised rows
    student_ids: np.ndarray  # (n,) str


@dataclass
class Manifest:
    version: int
    model_name: str
    detector: str
    metric: str
    threshold: float
    created_at: str
    segments: list[dict] = field(default_factory=list)  # {"key", "count", "students": {id: n}}

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Manifest":
        return cls(**json.loads(raw))

    def embeddings_per_student(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for seg in self.segments:
            for sid, n in seg["students"].items():
                counts[sid] = counts.get(sid, 0) + n
        return counts


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _segment_bytes(embeddings: np.ndarray, student_ids: list[str]) -> bytes:
    out = io.BytesIO()
    np.savez(out, embeddings=embeddings.astype(np.float32), student_ids=np.array(student_ids))
    return out.getvalue()


class GalleryRepository:
    def __init__(self, blobs: BlobStore, records: RecordsStore):
        self.blobs = blobs
        self.records = records

    def current_manifest(self) -> Manifest | None:
        pointer = self.records.get_gallery_pointer()
        if pointer is None:
            return None
        return Manifest.from_json(self.blobs.get(pointer.manifest_key))

    def load_segment(self, key: str) -> Segment:
        with np.load(io.BytesIO(self.blobs.get(key)), allow_pickle=False) as data:
            return Segment(key, data["embeddings"].astype(np.float32), data["student_ids"])

    def commit(
        self,
        embeddings: np.ndarray,
        student_ids: list[str],
        *,
        segment_id: str,
        model_name: str,
        detector: str,
        metric: str,
        threshold: float,
    ) -> int:
        """Add embeddings as a new version; return its number. Retries when another writer wins.

        ``segment_id`` names the enrollment (its job id): committing the same one twice, as a
        redelivered task does, adds nothing the second time.
        """
        seg_key = f"gallery/segments/{segment_id}.npz"
        current = self.current_manifest()
        if current and any(seg["key"] == seg_key for seg in current.segments):
            return current.version
        # The segment is written once, before any pointer moves: a pointer never names a
        # version whose objects are not all stored.
        self.blobs.put(seg_key, _segment_bytes(normalise(embeddings), student_ids))
        counts: dict[str, int] = {}
        for sid in student_ids:
            counts[sid] = counts.get(sid, 0) + 1
        entry = {"key": seg_key, "count": len(student_ids), "students": counts}

        for _ in range(MAX_COMMIT_ATTEMPTS):
            pointer = self.records.get_gallery_pointer()
            base = Manifest.from_json(self.blobs.get(pointer.manifest_key)) if pointer else None
            if base and any(seg["key"] == seg_key for seg in base.segments):
                return base.version
            version = (pointer.version if pointer else 0) + 1
            manifest = Manifest(
                version=version,
                model_name=model_name,
                detector=detector,
                metric=metric,
                threshold=threshold,
                created_at=dt.datetime.now(dt.timezone.utc).isoformat(),
                segments=(base.segments if base else []) + [entry],
            )
            manifest_key = f"gallery/manifests/v{version:08d}-{uuid.uuid4().hex[:8]}.json"
            self.blobs.put(manifest_key, manifest.to_json(), "application/json")
            expected = pointer.version if pointer else 0
            if self.records.swap_gallery_pointer(expected, GalleryPointer(version, manifest_key)):
                log.info("gallery version %d committed (%d new embeddings)", version, len(student_ids))
                return version
            # Lost the race: this manifest is never pointed at; drop it and rebase.
            self.blobs.delete(manifest_key)
        raise GalleryConflict("the gallery kept changing under this enrollment; try again")


class GalleryCache:
    """A worker's in-memory view of the current gallery, refreshed when the pointer moves."""

    def __init__(self, repo: GalleryRepository):
        self.repo = repo
        self.version = 0
        self.manifest: Manifest | None = None
        self.embeddings = np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self.student_ids = np.array([], dtype=str)
        self._segments: dict[str, Segment] = {}

    def refresh(self) -> int:
        pointer = self.repo.records.get_gallery_pointer()
        if pointer is None or pointer.version == self.version:
            return self.version
        manifest = Manifest.from_json(self.repo.blobs.get(pointer.manifest_key))
        wanted = [seg["key"] for seg in manifest.segments]
        for key in wanted:
            if key not in self._segments:
                self._segments[key] = self.repo.load_segment(key)
        self._segments = {key: self._segments[key] for key in wanted}
        segs = [self._segments[key] for key in wanted]
        if segs:
            self.embeddings = np.concatenate([s.embeddings for s in segs], axis=0)
            self.student_ids = np.concatenate([s.student_ids for s in segs], axis=0)
        self.version, self.manifest = manifest.version, manifest
        log.info("gallery version %d loaded (%d embeddings)", self.version, len(self.student_ids))
        return self.version
