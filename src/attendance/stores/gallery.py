"""The gallery ("the model"): enrolled embeddings as immutable, versioned objects.

A version is a manifest listing immutable segments (one per enrollment). Committing writes one new
segment and one small manifest, then moves the pointer in the records store by compare-and-set, so
the cost follows the new photos, not the gallery size, and concurrent commits never lose each
other. Readers cache segments by key, so picking up a new version loads only what is new.

So that a manifest stays small however many students are enrolled, it lists only the recent
segments; the older ones are folded into an immutable snapshot object it names (``base``). A
commit folds when the recent list grows past FOLD_SEGMENTS entries or FOLD_STUDENTS students,
so the manifest a commit reads and writes is bounded, and snapshots, being immutable, are read
once per process and cached.

Every segment entry names the pipeline that made its embeddings (``"pipeline"``, e.g.
``Facenet/centerface-v1``: attendance.domain.pipelines.pipeline_id). Embeddings of different pipelines
(another detector, another alignment, another model) are not comparable, so a reader loads only
the segments of its own pipeline. Entries written before pipelines were recorded have none:
they were made by Haar cascades with eye alignment, LEGACY_PIPELINE.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from attendance.domain.errors import GalleryConflict, StudentErased
from attendance.domain.keys import GALLERY_SEGMENTS
from attendance.domain.matching import CandidateSet, normalise, select_candidates
from attendance.stores.blob import BlobStore
from attendance.stores.records import GalleryPointer, RecordsStore

log = logging.getLogger(__name__)

EMBEDDING_DIM = 128
MAX_COMMIT_ATTEMPTS = 20
# A manifest lists at most this many recent segments (or segments of this many students) before
# a commit folds them into a new snapshot.
FOLD_SEGMENTS = 64
FOLD_STUDENTS = 1024
# What made the embeddings of a segment entry that names no pipeline (written before entries
# recorded one): FaceNet on OpenCV's Haar cascades with eye alignment.
LEGACY_PIPELINE = "Facenet/opencv-v1"


def segment_pipeline(entry: dict) -> str:
    """The pipeline that made a segment entry's embeddings."""
    return entry.get("pipeline") or LEGACY_PIPELINE


def segment_key(segment_id: str) -> str:
    return f"{GALLERY_SEGMENTS}{segment_id}.npz"


def _versioned_key(kind: str, version: int) -> str:
    """A new manifest or snapshot of a version: unique, so a writer that loses a race never
    overwrites the winner's."""
    return f"gallery/{kind}/v{version:08d}-{uuid.uuid4().hex[:8]}.json"


@dataclass(frozen=True)
class Segment:
    key: str
    embeddings: np.ndarray  # (n, d) float32, L2-normalised rows
    student_ids: np.ndarray  # (n,) str


@dataclass(frozen=True)
class Snapshot:
    """Immutable list of folded segment entries, with what readers look up in it."""

    key: str
    segments: tuple[dict, ...]
    keys: frozenset[str]
    counts: dict[str, int]  # embeddings per student, every pipeline
    by_pipeline: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_segments(cls, key: str, segments: list[dict]) -> Snapshot:
        counts: dict[str, int] = {}
        by_pipeline: dict[str, dict[str, int]] = {}
        for seg in segments:
            mine = by_pipeline.setdefault(segment_pipeline(seg), {})
            for sid, n in seg["students"].items():
                counts[sid] = counts.get(sid, 0) + n
                mine[sid] = mine.get(sid, 0) + n
        return cls(
            key, tuple(segments), frozenset(seg["key"] for seg in segments), counts, by_pipeline
        )

    def to_json(self) -> bytes:
        return json.dumps({"segments": list(self.segments)}, sort_keys=True).encode()


_EMPTY_SNAPSHOT = Snapshot("", (), frozenset(), {})


class _SnapshotCache:
    """Snapshots by key, per process: they never change, so each is read and parsed once."""

    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict[str, Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, blobs: BlobStore, key: str) -> Snapshot:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        snap = Snapshot.from_segments(key, json.loads(blobs.get(key))["segments"])
        self.put(snap)
        return snap

    def put(self, snap: Snapshot) -> None:
        with self._lock:
            self._items[snap.key] = snap
            self._items.move_to_end(snap.key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


SNAPSHOTS = _SnapshotCache()


@dataclass
class Manifest:
    version: int
    model_name: str
    detector: str
    metric: str
    threshold: float
    created_at: str
    # The recent segments, after those of the base snapshot:
    # {"key", "count", "students": {id: n}, "pipeline"} ("pipeline" missing: LEGACY_PIPELINE)
    segments: list[dict] = field(default_factory=list)
    base: str | None = None  # key of the snapshot holding the older segments
    snapshot: Snapshot = field(default=_EMPTY_SNAPSHOT, repr=False, compare=False)

    def to_json(self) -> bytes:
        body = {k: v for k, v in self.__dict__.items() if k != "snapshot"}
        if body["base"] is None:  # the layout of manifests written before snapshots existed
            del body["base"]
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, blobs: BlobStore | None = None) -> Manifest:
        manifest = cls(**json.loads(raw))
        if manifest.base:
            if blobs is None:
                raise ValueError("this manifest names a snapshot: pass the blob store to read it")
            manifest.snapshot = SNAPSHOTS.get(blobs, manifest.base)
        return manifest

    def all_segments(self) -> list[dict]:
        """Every segment of this version, oldest first."""
        return list(self.snapshot.segments) + self.segments

    def has_segment(self, key: str) -> bool:
        return key in self.snapshot.keys or any(seg["key"] == key for seg in self.segments)

    def embeddings_per_student(self, pipeline: str | None = None) -> dict[str, int]:
        """Embeddings per student: of ``pipeline`` only, or (None) of every pipeline."""
        if pipeline is None:
            counts = dict(self.snapshot.counts)
        else:
            counts = dict(self.snapshot.by_pipeline.get(pipeline, {}))
        for seg in self.segments:
            if pipeline is not None and segment_pipeline(seg) != pipeline:
                continue
            for sid, n in seg["students"].items():
                counts[sid] = counts.get(sid, 0) + n
        return counts

    def embeddings_by_pipeline(self) -> dict[str, dict[str, int]]:
        """{pipeline: {student_id: embeddings}} over every segment of this version."""
        out = {p: dict(c) for p, c in self.snapshot.by_pipeline.items()}
        for seg in self.segments:
            mine = out.setdefault(segment_pipeline(seg), {})
            for sid, n in seg["students"].items():
                mine[sid] = mine.get(sid, 0) + n
        return out

    def segment_entry(self, key: str) -> dict | None:
        for seg in self.all_segments():
            if seg["key"] == key:
                return seg
        return None


def _segment_bytes(embeddings: np.ndarray, student_ids: list[str]) -> bytes:
    out = io.BytesIO()
    np.savez(out, embeddings=embeddings.astype(np.float32), student_ids=np.array(student_ids))
    return out.getvalue()


@dataclass
class Rewrite:
    """What an edit of the gallery's segments wants: the entries the new version keeps, the
    keys to delete once it is current (the segments it replaces), those to delete if it never
    becomes current (what the edit wrote), and what to report (e.g. embeddings removed)."""

    kept: list[dict]
    drop: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    removed: int = 0


_VERSIONED = re.compile(r"gallery/(manifests|snapshots)/v(\d{8})-.*")


class GalleryRepository:
    def __init__(self, blobs: BlobStore, records: RecordsStore):
        self.blobs = blobs
        self.records = records

    def current_manifest(self) -> Manifest | None:
        pointer = self.records.get_gallery_pointer()
        if pointer is None:
            return None
        return Manifest.from_json(self.blobs.get(pointer.manifest_key), self.blobs)

    def rewrite(self, edit: Callable[[list[dict]], Rewrite | None], what: str) -> tuple[int, int]:
        """Commit a version whose segments ``edit`` chose from the current ones (None: no change),
        all folded into one new snapshot, then delete what it replaced and every older manifest
        and snapshot, so no earlier version can bring the replaced segments back. Retries when
        another writer wins. Returns (version, the edit's ``removed``)."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            pointer = self.records.get_gallery_pointer()
            if pointer is None:
                return 0, 0
            base = Manifest.from_json(self.blobs.get(pointer.manifest_key), self.blobs)
            change = edit(base.all_segments())
            if change is None:
                return base.version, 0
            version = pointer.version + 1
            snapshot = Snapshot.from_segments(_versioned_key("snapshots", version), change.kept)
            self.blobs.put(snapshot.key, snapshot.to_json(), "application/json")
            manifest = Manifest(
                version=version,
                model_name=base.model_name,
                detector=base.detector,
                metric=base.metric,
                threshold=base.threshold,
                created_at=dt.datetime.now(dt.UTC).isoformat(),
                segments=[],
                base=snapshot.key,
                snapshot=snapshot,
            )
            manifest_key = _versioned_key("manifests", version)
            self.blobs.put(manifest_key, manifest.to_json(), "application/json")
            if self.records.swap_gallery_pointer(
                pointer.version, GalleryPointer(version, manifest_key)
            ):
                SNAPSHOTS.put(snapshot)
                for key in change.drop:
                    self.blobs.delete(key)
                self.delete_older_versions(version)
                return version, change.removed
            for key in change.written + [snapshot.key, manifest_key]:
                self.blobs.delete(key)
        raise GalleryConflict(f"the gallery kept changing during {what}; try again")

    def delete_older_versions(self, version: int) -> None:
        for prefix in ("gallery/manifests/", "gallery/snapshots/"):
            for key in self.blobs.list(prefix):
                match = _VERSIONED.fullmatch(key)
                if match and int(match.group(2)) < version:
                    self.blobs.delete(key)

    def load_segment(self, key: str) -> Segment:
        with np.load(io.BytesIO(self.blobs.get(key)), allow_pickle=False) as data:
            return Segment(key, data["embeddings"].astype(np.float32), data["student_ids"])

    def commit(
        self,
        embeddings: np.ndarray,
        student_ids: list[str],
        *,
        segment_id: str,
        pipeline: str,
        model_name: str,
        detector: str,
        metric: str,
        threshold: float,
        guard: tuple[str, dt.datetime] | None = None,
    ) -> int:
        """Add embeddings as a new version; return its number. Retries when another writer wins.

        ``segment_id`` names the enrollment (its job id): committing the same one twice, as a
        redelivered task does, adds nothing the second time. ``pipeline`` names what made the
        embeddings (attendance.domain.pipelines.pipeline_id); readers of another pipeline skip them.
        ``guard`` (student_id, asked_at):
        StudentErased, and nothing of this commit left behind, if that student was erased
        since the enrollment was asked for.
        """
        seg_key = segment_key(segment_id)
        current = self.current_manifest()
        if current and current.has_segment(seg_key):
            return current.version
        # The segment is written once, before any pointer moves: a pointer never names a
        # version whose objects are not all stored.
        self.blobs.put(seg_key, _segment_bytes(normalise(embeddings), student_ids))
        counts: dict[str, int] = {}
        for sid in student_ids:
            counts[sid] = counts.get(sid, 0) + 1
        entry = {
            "key": seg_key,
            "count": len(student_ids),
            "students": counts,
            "pipeline": pipeline,
        }

        for _ in range(MAX_COMMIT_ATTEMPTS):
            pointer = self.records.get_gallery_pointer()
            if pointer and current and current.version == pointer.version:
                base = current  # read just above: no need to read it again
            else:
                base = (
                    Manifest.from_json(self.blobs.get(pointer.manifest_key), self.blobs)
                    if pointer
                    else None
                )
            if base and base.has_segment(seg_key):
                return base.version
            version = (pointer.version if pointer else 0) + 1
            recent = (base.segments if base else []) + [entry]
            snapshot = base.snapshot if base else _EMPTY_SNAPSHOT
            new_snapshot = None
            if (
                len(recent) > FOLD_SEGMENTS
                or sum(len(seg["students"]) for seg in recent) > FOLD_STUDENTS
            ):
                # Fold: the older segments and these go into a new immutable snapshot, so the
                # manifests of the next commits stay small.
                new_snapshot = Snapshot.from_segments(
                    _versioned_key("snapshots", version),
                    list(snapshot.segments) + recent,
                )
                self.blobs.put(new_snapshot.key, new_snapshot.to_json(), "application/json")
                snapshot, recent = new_snapshot, []
            manifest = Manifest(
                version=version,
                model_name=model_name,
                detector=detector,
                metric=metric,
                threshold=threshold,
                created_at=dt.datetime.now(dt.UTC).isoformat(),
                segments=recent,
                base=snapshot.key or None,
                snapshot=snapshot,
            )
            manifest_key = _versioned_key("manifests", version)
            self.blobs.put(manifest_key, manifest.to_json(), "application/json")
            expected = pointer.version if pointer else 0
            try:
                swapped = self.records.swap_gallery_pointer(
                    expected, GalleryPointer(version, manifest_key), guard=guard
                )
            except StudentErased:
                for key in (manifest_key, new_snapshot.key if new_snapshot else None, seg_key):
                    if key:
                        self.blobs.delete(key)
                raise
            if swapped:
                if new_snapshot is not None:
                    SNAPSHOTS.put(new_snapshot)
                log.info(
                    "gallery version %d committed (%d new embeddings)", version, len(student_ids)
                )
                return version
            # Lost the race: this manifest is never pointed at; drop it and rebase.
            self.blobs.delete(manifest_key)
            if new_snapshot is not None:
                self.blobs.delete(new_snapshot.key)
            current = None
        raise GalleryConflict("the gallery kept changing under this enrollment; try again")


class GalleryCache:
    """A worker's in-memory view of the current gallery, refreshed when the pointer moves.

    Embeddings live in one buffer that grows by doubling, and a new version's segments are
    appended to it: picking up an enrollment costs what the enrollment added, not the gallery's
    size. Students are kept as integer codes; the candidate rows of a class are computed once
    per version and roster (see candidates()). Only the segments of ``pipeline`` (the worker's
    own: attendance.domain.pipelines.pipeline_id) are loaded; the others are never read.
    """

    CANDIDATE_SETS = 8  # rosters kept per version

    def __init__(self, repo: GalleryRepository, pipeline: str):
        self.repo = repo
        self.pipeline = pipeline
        self.version = 0
        self.manifest: Manifest | None = None
        self._reset()

    def _reset(self) -> None:
        self._size = 0
        self._emb = np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self._codes = np.zeros(0, dtype=np.int32)
        self._students: list[str] = []
        self._code_of: dict[str, int] = {}
        self._segments: dict[str, tuple[int, int]] = {}  # key -> its rows in the buffer
        self._order: list[str] = []
        self._derived: dict = {}

    @property
    def embeddings(self) -> np.ndarray:
        return self._emb[: self._size]

    @property
    def codes(self) -> np.ndarray:
        return self._codes[: self._size]

    @property
    def students(self) -> np.ndarray:
        """Every student id, indexed by code."""
        if "students" not in self._derived:
            self._derived["students"] = np.array(self._students, dtype=str)
        return self._derived["students"]

    @property
    def student_ids(self) -> np.ndarray:
        """The student id of each embedding row."""
        if "student_ids" not in self._derived:
            students = self.students
            self._derived["student_ids"] = (
                students[self.codes] if len(students) else np.array([], dtype=str)
            )
        return self._derived["student_ids"]

    def candidates(self, roster) -> CandidateSet:
        """The rows a class with this roster may match, cached per version."""
        key = frozenset(roster)
        sets = self._derived.setdefault("candidates", OrderedDict())
        if key in sets:
            sets.move_to_end(key)
            return sets[key]
        found = select_candidates(self.embeddings, self.codes, self.students, set(key))
        sets[key] = found
        while len(sets) > self.CANDIDATE_SETS:
            sets.popitem(last=False)
        return found

    def _append(self, seg: Segment) -> None:
        n = len(seg.embeddings)
        need = self._size + n
        if need > len(self._emb):
            capacity = max(need + 1024, int(need * 1.5), 2 * len(self._emb))
            emb = np.empty((capacity, EMBEDDING_DIM), dtype=np.float32)
            emb[: self._size] = self._emb[: self._size]
            codes = np.empty(capacity, dtype=np.int32)
            codes[: self._size] = self._codes[: self._size]
            self._emb, self._codes = emb, codes
        self._emb[self._size : need] = seg.embeddings
        code_of, students = self._code_of, self._students
        ids, inverse = np.unique(seg.student_ids, return_inverse=True)
        for sid in ids.tolist():
            if sid not in code_of:
                code_of[sid] = len(students)
                students.append(sid)
        self._codes[self._size : need] = np.array(
            [code_of[sid] for sid in ids.tolist()], dtype=np.int32
        )[inverse.reshape(-1)]
        self._segments[seg.key] = (self._size, need)
        self._order.append(seg.key)
        self._size = need

    def refresh(self) -> int:
        pointer = self.repo.records.get_gallery_pointer()
        if pointer is None or pointer.version == self.version:
            return self.version
        manifest = Manifest.from_json(self.repo.blobs.get(pointer.manifest_key), self.repo.blobs)
        wanted = [
            seg["key"] for seg in manifest.all_segments() if segment_pipeline(seg) == self.pipeline
        ]
        if wanted[: len(self._order)] != self._order:
            # Segments went away or changed order (never done by commit): start over.
            self._reset()
        for key in wanted[len(self._order) :]:
            self._append(self.repo.load_segment(key))
        self._derived = {}
        self.version, self.manifest = manifest.version, manifest
        log.info(
            "gallery version %d loaded (%d embeddings of %s)",
            self.version,
            self._size,
            self.pipeline,
        )
        return self.version
