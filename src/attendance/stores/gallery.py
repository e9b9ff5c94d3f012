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
import functools
import io
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from attendance.domain import keys
from attendance.domain.errors import GalleryConflict, StudentErased
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


def encode_segment(embeddings: np.ndarray, student_ids: Sequence[str]) -> bytes:
    """A segment as it is stored: its embeddings (float32 rows) and the student of each row."""
    out = io.BytesIO()
    np.savez(out, embeddings=embeddings.astype(np.float32), student_ids=np.array(student_ids))
    return out.getvalue()


def _counts(student_ids: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sid in student_ids:
        counts[sid] = counts.get(sid, 0) + 1
    return counts


def _entry(key: str, student_ids: Sequence[str], pipeline: str) -> dict:
    """A manifest's entry for a segment stored at ``key``."""
    return {
        "key": key,
        "count": len(student_ids),
        "students": _counts(student_ids),
        "pipeline": pipeline,
    }


def _too_long(recent: list[dict]) -> bool:
    """Whether a manifest's recent segments are to be folded into a snapshot."""
    return (
        len(recent) > FOLD_SEGMENTS or sum(len(seg["students"]) for seg in recent) > FOLD_STUDENTS
    )


# What rewrite() asks about each segment: True keeps it, False drops it, and a boolean mask over
# its rows keeps those rows only, in a new segment that replaces it.
SegmentChoice = bool | np.ndarray


@dataclass(frozen=True)
class _Model:
    """What a manifest says made and matches its embeddings."""

    model_name: str
    detector: str
    metric: str
    threshold: float

    @classmethod
    def of(cls, manifest: Manifest) -> _Model:
        return cls(manifest.model_name, manifest.detector, manifest.metric, manifest.threshold)


@dataclass
class _Change:
    """A version to commit: the segments it lists after those of ``snapshot``, and what becomes
    of the objects around it."""

    model: _Model
    recent: list[dict]
    snapshot: Snapshot = _EMPTY_SNAPSHOT  # a stored snapshot holding its older segments
    fold: bool = False  # fold every segment into a new snapshot, however few the recent ones
    written: list[str] = field(default_factory=list)  # stored for it alone: deleted if it loses
    replaced: list[str] = field(default_factory=list)  # deleted once it is current
    prune: bool = False  # delete every older manifest and snapshot once it is current
    removed: int = 0  # embeddings of the current version it leaves out


class GalleryRepository:
    def __init__(self, blobs: BlobStore, records: RecordsStore):
        self.blobs = blobs
        self.records = records

    def read_manifest(self, pointer: GalleryPointer) -> Manifest:
        return Manifest.from_json(self.blobs.get(pointer.manifest_key), self.blobs)

    def current_manifest(self) -> Manifest | None:
        pointer = self.records.get_gallery_pointer()
        return self.read_manifest(pointer) if pointer else None

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
        embeddings (attendance.domain.pipelines.pipeline_id); readers of another pipeline skip
        them. ``guard`` (student_id, asked_at): StudentErased, and nothing of this commit left
        behind, if that student was erased since the enrollment was asked for.
        """
        seg_key = keys.segment_key(segment_id)
        current = self.current_manifest()
        if current and current.has_segment(seg_key):
            return current.version
        # The segment is written once, before any pointer moves: a pointer never names a
        # version whose objects are not all stored.
        self.blobs.put(seg_key, encode_segment(normalise(embeddings), student_ids))
        entry = _entry(seg_key, student_ids, pipeline)
        model = _Model(model_name, detector, metric, threshold)

        def add_segment(base: Manifest | None) -> _Change | None:
            if base is None:
                return _Change(model, [entry])
            if base.has_segment(seg_key):
                return None
            return _Change(model, base.segments + [entry], base.snapshot)

        try:
            version, change = self._commit(
                add_segment, "under this enrollment", guard=guard, known=current
            )
        except StudentErased:
            self.blobs.delete(seg_key)
            raise
        if change is not None:
            log.info("gallery version %d committed (%d new embeddings)", version, len(student_ids))
        return version

    def rewrite(
        self, keep: Callable[[dict, Callable[[], Segment]], SegmentChoice], what: str
    ) -> tuple[int, int]:
        """Commit a version that keeps, drops or rewrites each segment of the current one as
        ``keep(entry, load)`` says (``load()`` reads the segment's rows), all folded into one
        new snapshot; then delete the segments it replaced and every older manifest and
        snapshot, so no earlier version can bring them back. Nothing is committed when every
        segment is kept. Retries when another writer wins. Returns (the current version, the
        embeddings left out)."""

        def edit(base: Manifest | None) -> _Change | None:
            if base is None:
                return None
            change = _Change(_Model.of(base), [], fold=True, prune=True)
            for entry in base.all_segments():
                self._apply(change, entry, keep)
            return change if change.replaced else None

        version, change = self._commit(edit, f"during {what}")
        return version, change.removed if change else 0

    def _apply(
        self,
        change: _Change,
        entry: dict,
        keep: Callable[[dict, Callable[[], Segment]], SegmentChoice],
    ) -> None:
        """Add what ``keep`` chose of one segment to ``change``."""
        rows = functools.cache(lambda: self.load_segment(entry["key"]))
        choice = keep(entry, rows)
        mask = np.asarray(choice, dtype=bool) if isinstance(choice, np.ndarray) else None
        if (mask is None and choice) or (mask is not None and mask.all()):
            change.recent.append(entry)
            return
        change.replaced.append(entry["key"])
        if mask is None or not mask.any():
            change.removed += entry["count"]
            return
        segment = rows()
        change.removed += int((~mask).sum())
        key = keys.rewritten_segment_key(entry["key"])
        kept_ids = segment.student_ids[mask].tolist()
        self.blobs.put(key, encode_segment(segment.embeddings[mask], kept_ids))
        change.written.append(key)
        # The rewritten segment holds embeddings of the same pipeline as before.
        change.recent.append(_entry(key, kept_ids, segment_pipeline(entry)))

    def _commit(
        self,
        propose: Callable[[Manifest | None], _Change | None],
        what: str,
        *,
        guard: tuple[str, dt.datetime] | None = None,
        known: Manifest | None = None,
    ) -> tuple[int, _Change | None]:
        """The one way a version is committed. ``propose`` is given the current version (None:
        there is none) and answers the next one (None: nothing to change). Its objects are
        written, then the pointer moves by compare-and-set; a writer that lost the race deletes
        what it wrote and proposes again on the version that won. ``known``: the current
        version as the caller just read it. Returns (the current version, the change committed
        or None)."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            pointer = self.records.get_gallery_pointer()
            if known is not None and pointer is not None and known.version == pointer.version:
                base: Manifest | None = known  # read just before: no need to read it again
            else:
                base = self.read_manifest(pointer) if pointer else None
            known = None
            change = propose(base)
            if change is None:
                return (base.version if base else 0), None
            version = (pointer.version if pointer else 0) + 1
            manifest, attempt = self._write_version(change, version)
            try:
                swapped = self.records.swap_gallery_pointer(
                    pointer.version if pointer else 0,
                    GalleryPointer(version, attempt[-1]),
                    guard=guard,
                )
            except StudentErased:
                self._delete(attempt + change.written)
                raise
            if swapped:
                if manifest.snapshot is not change.snapshot:
                    SNAPSHOTS.put(manifest.snapshot)
                self._delete(change.replaced)
                if change.prune:
                    self.delete_older_versions(version)
                return version, change
            # Lost the race: this manifest is never pointed at; drop it and propose again.
            self._delete(change.written + attempt)
        raise GalleryConflict(f"the gallery kept changing {what}; try again")

    def _write_version(self, change: _Change, version: int) -> tuple[Manifest, list[str]]:
        """Store the manifest of ``change`` (and the new snapshot it folds into, if any).
        Returns it and the keys written, the manifest's last."""
        written = []
        snapshot, recent = change.snapshot, change.recent
        if change.fold or _too_long(recent):
            # The older segments and these go into a new immutable snapshot, so the manifests
            # of the next commits stay small.
            snapshot = Snapshot.from_segments(
                keys.snapshot_key(version), list(snapshot.segments) + recent
            )
            self.blobs.put(snapshot.key, snapshot.to_json(), "application/json")
            written.append(snapshot.key)
            recent = []
        manifest = Manifest(
            version=version,
            model_name=change.model.model_name,
            detector=change.model.detector,
            metric=change.model.metric,
            threshold=change.model.threshold,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
            segments=recent,
            base=snapshot.key or None,
            snapshot=snapshot,
        )
        key = keys.manifest_key(version)
        self.blobs.put(key, manifest.to_json(), "application/json")
        written.append(key)
        return manifest, written

    def _delete(self, doomed: Iterable[str]) -> None:
        for key in doomed:
            self.blobs.delete(key)

    def delete_older_versions(self, version: int) -> None:
        """Delete every manifest and snapshot written for a version before ``version``."""
        for prefix in keys.GALLERY_VERSION_PREFIXES:
            for key in self.blobs.list(prefix):
                written_for = keys.version_of(key)
                if written_for is not None and written_for < version:
                    self.blobs.delete(key)


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
        manifest = self.repo.read_manifest(pointer)
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
