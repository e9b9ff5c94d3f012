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

A fold also packs: the recent segments of each pipeline are merged into one packed segment (a
new immutable blob holding their rows in order) and the snapshot lists it, with the segments it
holds as its ``parts``, instead of them. When a pipeline has more than PACK_FANIN segments of
fewer than PACK_STUDENTS students in the snapshot, the fold also merges a run of adjacent ones
(at most PACK_INPUTS) into one. So a reader loading the whole gallery reads a few large blobs,
not one per enrollment. ``all_segments`` still answers the enrollments' segments (a packed one's
parts), which is what commits, erasure, re-embedding and retention reason about; ``rewrite``
asks about each part and rewrites a packed segment whose parts it changes. The segments a fold
packed stay stored while a version listing them does: ``delete_older_versions`` deletes them
(and packed segments merged away) once only deleted versions list them, and, with erasure,
deletes the packed segments of attempts that lost their race but were never deleted (their
writer died), since no version can list them any more (``delete_orphan_packs``).

Every segment entry records when its enrollment (or re-embedding) was committed
(``"written_at"``), kept through packing and rewriting, so retention knows it once the
segment's own blob is deleted. Entries written before that have none: their blob's age says it,
and a fold that packs one, or a rewrite of one, stamps that age into the entry first.

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
from attendance.domain.errors import GalleryConflict, NotFound, StudentErased
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
# A packed segment stops taking in more segments once it holds this many students.
PACK_STUDENTS = 4096
# Segments of one pipeline smaller than that which a snapshot holds before a fold merges some,
# and how many segments one merge reads at most, so that a fold's work stays bounded.
PACK_FANIN = 16
PACK_INPUTS = 64
# What made the embeddings of a segment entry that names no pipeline (written before entries
# recorded one): FaceNet on OpenCV's Haar cascades with eye alignment.
LEGACY_PIPELINE = "Facenet/opencv-v1"


def segment_pipeline(entry: dict) -> str:
    """The pipeline that made a segment entry's embeddings."""
    return entry.get("pipeline") or LEGACY_PIPELINE


def segment_parts(entry: dict) -> list[dict]:
    """The entries of the segments a stored segment holds, in the order of its rows: those it
    packs, or itself."""
    return entry.get("parts") or [entry]


@dataclass(frozen=True)
class Segment:
    key: str
    embeddings: np.ndarray  # (n, d) float32, L2-normalised rows
    student_ids: np.ndarray  # (n,) str


@dataclass(frozen=True)
class Snapshot:
    """Immutable list of folded segment entries, with what readers look up in it."""

    key: str
    segments: tuple[dict, ...]  # as stored: packed ones name their parts
    keys: frozenset[str]  # of those and of their parts
    counts: dict[str, int]  # embeddings per student, every pipeline
    by_pipeline: dict[str, dict[str, int]] = field(default_factory=dict)

    @functools.cached_property
    def parts(self) -> tuple[dict, ...]:
        """The entries of the segments it holds, packed or not, in order."""
        return tuple(part for seg in self.segments for part in segment_parts(seg))

    @classmethod
    def from_segments(cls, key: str, segments: list[dict]) -> Snapshot:
        counts: dict[str, int] = {}
        by_pipeline: dict[str, dict[str, int]] = {}
        for seg in segments:
            mine = by_pipeline.setdefault(segment_pipeline(seg), {})
            for sid, n in seg["students"].items():
                counts[sid] = counts.get(sid, 0) + n
                mine[sid] = mine.get(sid, 0) + n
        named = {seg["key"] for seg in segments}
        named.update(part["key"] for seg in segments for part in seg.get("parts", ()))
        return cls(key, tuple(segments), frozenset(named), counts, by_pipeline)

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
    # {"key", "count", "students": {id: n}, "pipeline", "written_at"} ("pipeline" missing:
    # LEGACY_PIPELINE; "written_at" missing: the segment's blob was last written when it was);
    # a packed segment also has "parts": the entries of the segments it holds, in row order.
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
        """Every enrollment's (or re-embedding's, or rewritten) segment of this version, oldest
        first of each pipeline, whether it is stored on its own or packed."""
        return list(self.snapshot.parts) + [
            part for seg in self.segments for part in segment_parts(seg)
        ]

    def stored_segments(self) -> list[dict]:
        """The segments this version lists as they are stored (packed ones with their parts),
        oldest first of each pipeline: what a reader loads."""
        return list(self.snapshot.segments) + self.segments

    def has_segment(self, key: str) -> bool:
        """Whether this version holds the segment ``key``, stored on its own, packed, or as the
        packed segment of that key."""
        return key in self.snapshot.keys or any(
            seg["key"] == key or any(part["key"] == key for part in seg.get("parts", ()))
            for seg in self.segments
        )

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


def _entry(
    key: str, student_ids: Sequence[str], pipeline: str, written_at: str | None = None
) -> dict:
    """A manifest's entry for a segment stored at ``key``; ``written_at`` (UTC, ISO 8601): when
    the enrollment or re-embedding it holds was committed (not given for a packed segment,
    whose parts say it)."""
    entry = {
        "key": key,
        "count": len(student_ids),
        "students": _counts(student_ids),
        "pipeline": pipeline,
    }
    if written_at is not None:
        entry["written_at"] = written_at
    return entry


def written_at(entry: dict) -> dt.datetime | None:
    """When the enrollment or re-embedding of a segment entry (not a packed one) was committed;
    None for an entry written before entries recorded it: its blob's age says."""
    at = entry.get("written_at")
    return dt.datetime.fromisoformat(at) if at else None


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
    # With fold: the segments before ``recent``, when they are not those of ``snapshot``.
    older: list[dict] | None = None
    written: list[str] = field(default_factory=list)  # stored for it alone: deleted if it loses
    replaced: list[str] = field(default_factory=list)  # deleted once it is current
    prune: bool = False  # delete every older manifest and snapshot once it is current
    removed: int = 0  # embeddings of the current version it leaves out


Choose = Callable[[dict, Callable[[], Segment]], SegmentChoice]
Load = Callable[[str], Segment]


def _rows_of(segment: Segment, key: str, start: int, count: int) -> Segment:
    """The rows of a packed segment that one of its parts holds."""
    end = start + count
    return Segment(key, segment.embeddings[start:end], segment.student_ids[start:end])


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
        entry = _entry(seg_key, student_ids, pipeline, dt.datetime.now(dt.UTC).isoformat())
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

    def rewrite(self, keep: Choose, what: str) -> tuple[int, int]:
        """Commit a version that keeps, drops or rewrites each segment of the current one as
        ``keep(entry, load)`` says (``load()`` reads the segment's rows; a packed segment is
        asked about part by part), all folded into one new snapshot; then delete the segments
        it replaced and every older manifest and snapshot, so no earlier version can bring them
        back. Nothing is committed when every segment is kept. Retries when another writer
        wins. Returns (the current version, the embeddings left out)."""

        def edit(base: Manifest | None) -> _Change | None:
            if base is None:
                return None
            older: list[dict] = []
            change = _Change(_Model.of(base), [], fold=True, prune=True, older=older)
            for entry in base.snapshot.segments:
                self._apply(change, older, entry, keep, base.version + 1)
            for entry in base.segments:
                self._apply(change, change.recent, entry, keep, base.version + 1)
            return change if change.replaced else None

        version, change = self._commit(edit, f"during {what}")
        return version, change.removed if change else 0

    def _apply(
        self, change: _Change, into: list[dict], entry: dict, keep: Choose, version: int
    ) -> None:
        """Add what ``keep`` chose of one stored segment to ``change``, its entry to ``into``."""
        if "parts" in entry:
            self._apply_packed(change, into, entry, keep, version)
            return
        rows = functools.cache(lambda: self.load_segment(entry["key"]))
        choice = keep(entry, rows)
        mask = np.asarray(choice, dtype=bool) if isinstance(choice, np.ndarray) else None
        if (mask is None and choice) or (mask is not None and mask.all()):
            into.append(entry)
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
        # The rewritten segment holds embeddings of the same pipeline, of the same enrollment
        # as before: its new blob's age is not the enrollment's, so the entry says it.
        into.append(_entry(key, kept_ids, segment_pipeline(entry), self._written_at(entry)))

    def _apply_packed(
        self, change: _Change, into: list[dict], entry: dict, keep: Choose, version: int
    ) -> None:
        """``_apply`` of a packed segment: ``keep`` is asked about each part; if it changes any,
        the kept rows go into a new packed segment, and the parts it changed are deleted with
        the packed one (a part may still be stored on its own for an older version)."""
        packed = functools.cache(lambda: self.load_segment(entry["key"]))
        masks, parts, start = [], [], 0
        for part in segment_parts(entry):
            count = part["count"]

            def rows(start: int = start, count: int = count, key: str = part["key"]) -> Segment:
                return _rows_of(packed(), key, start, count)

            start += count
            choice = keep(part, functools.cache(rows))
            mask = np.asarray(choice, dtype=bool) if isinstance(choice, np.ndarray) else None
            if (mask is None and choice) or (mask is not None and mask.all()):
                masks.append(np.ones(count, dtype=bool))
                parts.append(part)
                continue
            change.replaced.append(part["key"])
            if mask is None or not mask.any():
                change.removed += count
                masks.append(np.zeros(count, dtype=bool))
                continue
            change.removed += int((~mask).sum())
            masks.append(mask)
            # Named anew, as a segment rewritten on its own is: its rows live in the packed one.
            kept_ids = rows().student_ids[mask].tolist()
            parts.append(
                _entry(
                    keys.rewritten_segment_key(part["key"]),
                    kept_ids,
                    segment_pipeline(part),
                    self._written_at(part, entry["key"]),
                )
            )
        if len(parts) == len(segment_parts(entry)) and all(m.all() for m in masks):
            into.append(entry)
            return
        change.replaced.append(entry["key"])
        if not parts:
            return
        segment, mask = packed(), np.concatenate(masks)
        key = keys.packed_segment_key(version)
        kept_ids = segment.student_ids[mask].tolist()
        self.blobs.put(key, encode_segment(segment.embeddings[mask], kept_ids))
        change.written.append(key)
        into.append({**_entry(key, kept_ids, segment_pipeline(entry)), "parts": parts})

    def _written_at(self, entry: dict, *holders: str) -> str:
        """An entry's ``written_at``, or, for an entry written before entries recorded it, when
        its blob was last written (``holders``: the blobs to ask instead when it is not stored
        on its own), so that retention still knows it once that blob is deleted."""
        if "written_at" in entry:
            return entry["written_at"]
        for key in (entry["key"], *holders):
            try:
                return self.blobs.modified_at(key).astimezone(dt.UTC).isoformat()
            except NotFound:
                continue
        raise NotFound(f"no stored segment holds {entry['key']!r}")

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
        # Segments never change: what one attempt read to pack them, the next need not read.
        load = functools.cache(self.load_segment)
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
            attempt: list[str] = []
            try:
                manifest = self._write_version(change, version, load, attempt)
            except NotFound:
                # A segment to pack went away: a newer version, pruning older ones, replaced
                # this one. Drop what was written and propose again on it.
                self._delete(change.written + attempt)
                if self.records.get_gallery_pointer() == pointer:
                    raise
                continue
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

    def _write_version(
        self, change: _Change, version: int, load: Load, written: list[str]
    ) -> Manifest:
        """Store the manifest of ``change`` (and the new snapshot it folds into, with the packed
        segments it writes, if any), adding each key written to ``written``, the manifest's
        last. Returns the manifest."""
        snapshot, recent = change.snapshot, change.recent
        if change.fold or _too_long(recent):
            # The older segments and these go into a new immutable snapshot, so the manifests
            # of the next commits stay small; packed, so a reader loads a few large segments.
            older = list(snapshot.segments) if change.older is None else change.older
            folded = older + self._packed(recent, version, load, written)
            folded = self._merged(folded, version, load, written)
            snapshot = Snapshot.from_segments(keys.snapshot_key(version), folded)
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
        return manifest

    def _pack(self, entries: list[dict], version: int, load: Load, written: list[str]) -> dict:
        """Store the rows of ``entries`` (segments of one pipeline), in order, as one packed
        segment; return its entry."""
        segments = [load(entry["key"]) for entry in entries]
        # A part's blob may be deleted once the pack is current: its entry keeps its age.
        parts = [
            {**part, "written_at": self._written_at(part, entry["key"])}
            for entry in entries
            for part in segment_parts(entry)
        ]
        student_ids = np.concatenate([seg.student_ids for seg in segments]).tolist()
        if sum(part["count"] for part in parts) != len(student_ids):
            raise ValueError("a segment holds other rows than its entry says")
        key = keys.packed_segment_key(version)
        self.blobs.put(
            key, encode_segment(np.concatenate([seg.embeddings for seg in segments]), student_ids)
        )
        written.append(key)
        return {**_entry(key, student_ids, segment_pipeline(entries[0])), "parts": parts}

    def _packed(
        self, recent: list[dict], version: int, load: Load, written: list[str]
    ) -> list[dict]:
        """``recent`` with the segments of each pipeline stored on their own packed into one,
        where the first of them was."""
        by_pipeline: dict[str, list[int]] = {}
        for i, entry in enumerate(recent):
            if "parts" not in entry:
                by_pipeline.setdefault(segment_pipeline(entry), []).append(i)
        out: list[dict | None] = list(recent)
        for rows in by_pipeline.values():
            if len(rows) > 1:
                out[rows[0]] = self._pack([recent[i] for i in rows], version, load, written)
                for i in rows[1:]:
                    out[i] = None
        return [entry for entry in out if entry is not None]

    def _merged(
        self, entries: list[dict], version: int, load: Load, written: list[str]
    ) -> list[dict]:
        """``entries`` with, for each pipeline holding more than PACK_FANIN small segments, the
        first run of adjacent small ones merged into one (PACK_INPUTS of them at most, until
        the merged one holds PACK_STUDENTS students), so each fold reads a bounded amount and
        small segments do not pile up."""
        out = list(entries)
        for pipeline in dict.fromkeys(segment_pipeline(entry) for entry in entries):
            mine = [i for i, entry in enumerate(out) if segment_pipeline(entry) == pipeline]
            small = [len(out[i]["students"]) < PACK_STUDENTS for i in mine]
            if sum(small) <= PACK_FANIN:
                continue
            start = next((j for j in range(len(mine) - 1) if small[j] and small[j + 1]), None)
            if start is None:
                continue
            run: list[int] = []
            students = 0
            for j in range(start, len(mine)):
                if not small[j] or len(run) >= PACK_INPUTS or students >= PACK_STUDENTS:
                    break
                run.append(mine[j])
                students += len(out[mine[j]]["students"])
            merged = self._pack([out[i] for i in run], version, load, written)
            kept: list[dict] = []
            for i, entry in enumerate(out):
                if i == run[0]:
                    kept.append(merged)
                elif i not in run:
                    kept.append(entry)
            out = kept
        return out

    def _delete(self, doomed: Iterable[str]) -> None:
        for key in doomed:
            self.blobs.delete(key)

    def delete_older_versions(self, version: int) -> None:
        """Delete every manifest and snapshot written for a version before ``version`` (but a
        snapshot a newer manifest names), then the segments only those listed: the segments the
        current version holds packed that no newer manifest lists on their own, and the packed
        segments no version can list any more (``delete_orphan_packs``)."""
        retained = []
        for key in self.blobs.list(keys.GALLERY_MANIFESTS):
            written_for = keys.version_of(key)
            if written_for is None or written_for < version:
                continue
            try:
                retained.append(Manifest.from_json(self.blobs.get(key), self.blobs))
            except NotFound:
                continue  # a manifest that lost its race, deleted by its writer meanwhile
        bases = {manifest.base for manifest in retained}
        for prefix in keys.GALLERY_VERSION_PREFIXES:
            for key in self.blobs.list(prefix):
                written_for = keys.version_of(key)
                if written_for is not None and written_for < version and key not in bases:
                    self.blobs.delete(key)
        listed = {seg["key"] for manifest in retained for seg in manifest.stored_segments()}
        # Only the current version says which segments are packed for good: a manifest that
        # has not won (or never will) may pack a segment its writer is about to list again.
        current = self.current_manifest()
        if current is not None:
            packed = {
                part["key"] for seg in current.stored_segments() for part in seg.get("parts", ())
            }
            self._delete(sorted(packed - listed))
            self.delete_orphan_packs(current)

    def delete_orphan_packs(self, current: Manifest | None = None) -> list[str]:
        """Delete the packed segments that the current version does not list and that were
        written for it or an older version; return their keys. No version can list them any
        more: an attempt that wrote them proposed a version the pointer has reached already,
        so its compare-and-set fails. A writer that died before deleting what its lost attempt wrote
        leaves such packs, holding the rows of the version it packed."""
        current = current or self.current_manifest()
        if current is None:
            return []
        doomed = []
        for key in self.blobs.list(keys.GALLERY_SEGMENTS):
            written_for = keys.packed_version(key)
            if (
                written_for is not None
                and written_for <= current.version
                and not current.has_segment(key)
            ):
                doomed.append(key)
        self._delete(doomed)
        return doomed


class GalleryCache:
    """A worker's in-memory view of the current gallery, refreshed when the pointer moves.

    Embeddings live in one buffer that grows by doubling, and a new version's segments are
    appended to it: picking up an enrollment costs what the enrollment added, not the gallery's
    size. The buffer is known by the enrollments' segments whose rows it holds, in order, so a
    version that packs segments the buffer already holds costs nothing to pick up. Students are
    kept as integer codes; the candidate rows of a class are computed once per version and
    roster (see candidates()). Only the segments of ``pipeline`` (the worker's own:
    attendance.domain.pipelines.pipeline_id) are loaded; the others are never read.
    """

    CANDIDATE_SETS = 8  # rosters kept per version
    REFRESH_ATTEMPTS = 3

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
        # Each segment whose rows the buffer holds (packed ones by their parts), in order.
        self._segments: dict[str, tuple[int, int]] = {}  # key -> its rows in the buffer
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

    def _append(self, embeddings: np.ndarray, student_ids: np.ndarray) -> None:
        n = len(embeddings)
        need = self._size + n
        if need > len(self._emb):
            capacity = max(need + 1024, int(need * 1.5), 2 * len(self._emb))
            emb = np.empty((capacity, EMBEDDING_DIM), dtype=np.float32)
            emb[: self._size] = self._emb[: self._size]
            codes = np.empty(capacity, dtype=np.int32)
            codes[: self._size] = self._codes[: self._size]
            self._emb, self._codes = emb, codes
        self._emb[self._size : need] = embeddings
        code_of, students = self._code_of, self._students
        ids, inverse = np.unique(student_ids, return_inverse=True)
        for sid in ids.tolist():
            if sid not in code_of:
                code_of[sid] = len(students)
                students.append(sid)
        self._codes[self._size : need] = np.array(
            [code_of[sid] for sid in ids.tolist()], dtype=np.int32
        )[inverse.reshape(-1)]
        self._size = need

    def refresh(self) -> int:
        for attempt in range(self.REFRESH_ATTEMPTS):
            pointer = self.repo.records.get_gallery_pointer()
            if pointer is None or pointer.version == self.version:
                return self.version
            try:
                manifest = self.repo.read_manifest(pointer)
                self._load(manifest)
            except NotFound:
                # A newer version replaced this one and its segments meanwhile: load that.
                if attempt + 1 == self.REFRESH_ATTEMPTS:
                    raise
                continue
            self._derived = {}
            self.version, self.manifest = manifest.version, manifest
            log.info(
                "gallery version %d loaded (%d embeddings of %s)",
                self.version,
                self._size,
                self.pipeline,
            )
            return self.version
        return self.version

    def _load(self, manifest: Manifest) -> None:
        """Make the buffer hold the rows of ``manifest`` of this pipeline, reading only what it
        does not hold yet."""
        # (stored segment, its first row, part key, rows) of each part, in order.
        wanted: list[tuple[str, int, str, int]] = []
        for seg in manifest.stored_segments():
            if segment_pipeline(seg) != self.pipeline:
                continue
            start = 0
            for part in segment_parts(seg):
                wanted.append((seg["key"], start, part["key"], part["count"]))
                start += part["count"]
        held = len(self._segments)
        if [(key, n) for _, _, key, n in wanted[:held]] != [
            (key, end - start) for key, (start, end) in self._segments.items()
        ]:
            # Segments went away or changed order (never done by commit): start over.
            self._reset()
            held = 0
        self._derived = {}
        todo = wanted[held:]
        i = 0
        while i < len(todo):
            # The parts still wanted of one stored segment are adjacent: one read, one append.
            j = i
            while j + 1 < len(todo) and todo[j + 1][0] == todo[i][0]:
                j += 1
            stored, first = todo[i][0], todo[i][1]
            rows = sum(n for *_, n in todo[i : j + 1])
            segment = self.repo.load_segment(stored)
            if first + rows > len(segment.embeddings):
                raise ValueError(f"segment {stored!r} holds fewer rows than its entry says")
            at = self._size
            self._append(
                segment.embeddings[first : first + rows], segment.student_ids[first : first + rows]
            )
            for _, _, key, n in todo[i : j + 1]:
                self._segments[key] = (at, at + n)
                at += n
            i = j + 1
