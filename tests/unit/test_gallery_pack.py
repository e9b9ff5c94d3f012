"""Folds pack segments: a cold reader loads a few packed segments, not one per enrollment, and
nothing is lost, duplicated or brought back by a pack (erasure, rewrite, a lost race, deletion
of older versions)."""

from __future__ import annotations

import datetime as dt
import os
import types

import numpy as np
import pytest

from attendance.domain import keys
from attendance.domain.matching import normalise
from attendance.services.erasure import erase_face_data
from attendance.services.retention import expire_templates
from attendance.stores import gallery as gallery_module
from attendance.stores.blob import LocalBlobStore
from attendance.stores.gallery import (
    GalleryCache,
    GalleryRepository,
    Manifest,
    segment_parts,
)
from attendance.stores.records import SqliteRecords

META = dict(
    model_name="Facenet",
    detector="opencv",
    metric="cosine",
    threshold=0.4,
    pipeline="Facenet/opencv-v1",
)
OTHER = "Facenet/centerface-v1"
STUDENTS = 300


class CountingBlobs:
    """A blob store that counts the segments read."""

    def __init__(self, inner):
        self.inner = inner
        self.segment_reads = 0

    def get(self, key: str) -> bytes:
        if key.startswith(keys.GALLERY_SEGMENTS):
            self.segment_reads += 1
        return self.inner.get(key)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(autouse=True)
def small_folds(monkeypatch):
    """Folds, packs and merges at sizes a test can reach."""
    monkeypatch.setattr(gallery_module, "FOLD_SEGMENTS", 8)
    monkeypatch.setattr(gallery_module, "PACK_STUDENTS", 40)
    monkeypatch.setattr(gallery_module, "PACK_FANIN", 3)
    monkeypatch.setattr(gallery_module, "PACK_INPUTS", 6)
    gallery_module.SNAPSHOTS._items.clear()


def repo_at(tmp_path, blobs=None) -> GalleryRepository:
    return GalleryRepository(
        blobs or LocalBlobStore(tmp_path / "store"), SqliteRecords(tmp_path / "db.sqlite")
    )


def vectors(n, seed):
    return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)


def enroll(repo, i, pipeline=META["pipeline"]):
    """Student i's enrollment: two embeddings, one segment."""
    return repo.commit(
        vectors(2, i), [f"s{i}"] * 2, segment_id=f"j{i}", **{**META, "pipeline": pipeline}
    )


def truth(students, pipeline_of=lambda i: META["pipeline"], pipeline=META["pipeline"]):
    """The rows a reader of ``pipeline`` is to hold: (student ids, embeddings) in enrollment
    order."""
    mine = [i for i in students if pipeline_of(i) == pipeline]
    ids = [f"s{i}" for i in mine for _ in range(2)]
    emb = np.concatenate([normalise(vectors(2, i)) for i in mine]) if mine else np.zeros((0, 128))
    return ids, emb


def fresh(repo, pipeline=META["pipeline"]) -> GalleryCache:
    cache = GalleryCache(repo, pipeline)
    cache.refresh()
    return cache


def assert_rows(cache, ids, emb):
    assert list(cache.student_ids) == ids
    assert np.array_equal(cache.embeddings, emb.astype(np.float32))
    # The codes of each row name its student.
    assert list(cache.students[cache.codes]) == ids


def stored_segment_blobs(repo) -> set[str]:
    return set(repo.blobs.list(keys.GALLERY_SEGMENTS))


def assert_all_listed_stored(repo, manifest: Manifest):
    stored = stored_segment_blobs(repo)
    for seg in manifest.stored_segments():
        assert seg["key"] in stored


def test_a_cold_load_of_many_enrollments_reads_few_packed_segments(tmp_path):
    counting = CountingBlobs(LocalBlobStore(tmp_path / "store"))
    repo = repo_at(tmp_path, counting)
    warm = GalleryCache(repo, META["pipeline"])
    for i in range(STUDENTS):
        enroll(repo, i)
        before = counting.segment_reads
        warm.refresh()
        # A warm reader reads the new enrollment's segment alone, even when a fold packed
        # the segments it holds.
        assert counting.segment_reads - before == 1
    manifest = repo.current_manifest()
    assert [s["key"] for s in manifest.all_segments()] == [
        keys.segment_key(f"j{i}") for i in range(STUDENTS)
    ]
    assert manifest.embeddings_per_student() == {f"s{i}": 2 for i in range(STUDENTS)}
    stored = manifest.stored_segments()
    assert any("parts" in seg for seg in stored)
    # Merges keep the small packed segments few.
    small = [seg for seg in stored if len(seg["students"]) < gallery_module.PACK_STUDENTS]
    assert len(small) <= gallery_module.PACK_FANIN + 1 + gallery_module.FOLD_SEGMENTS

    counting.segment_reads = 0
    cold = fresh(repo)
    assert counting.segment_reads == len(stored) < STUDENTS // 10
    ids, emb = truth(range(STUDENTS))
    assert_rows(cold, ids, emb)
    assert_rows(warm, ids, emb)
    assert len(cold.candidates({"s3", "s299"})) == 4
    # Redelivered enrollments, packed or recent, add nothing.
    version = manifest.version
    assert enroll(repo, 0) == version
    assert enroll(repo, STUDENTS - 1) == version


def test_pipelines_are_packed_apart_and_readers_load_their_own(tmp_path):
    repo = repo_at(tmp_path)
    pipeline_of = lambda i: OTHER if i % 3 == 0 else META["pipeline"]  # noqa: E731
    for i in range(120):
        enroll(repo, i, pipeline_of(i))
    manifest = repo.current_manifest()
    for seg in manifest.stored_segments():
        assert {gallery_module.segment_pipeline(p) for p in segment_parts(seg)} == {
            gallery_module.segment_pipeline(seg)
        }
    for pipeline in (META["pipeline"], OTHER):
        assert_rows(fresh(repo, pipeline), *truth(range(120), pipeline_of, pipeline))
    assert manifest.embeddings_by_pipeline()[OTHER] == {f"s{i}": 2 for i in range(0, 120, 3)}


def test_an_older_version_loads_until_deleted_and_deletion_keeps_the_current_one(tmp_path):
    repo = repo_at(tmp_path)
    for i in range(5):
        enroll(repo, i)
    old = repo.current_manifest()  # lists the enrollments' segments on their own
    assert not any("parts" in seg for seg in old.stored_segments())
    for i in range(5, 200):
        enroll(repo, i)
    current = repo.current_manifest()
    # A reader still holding the older version can load it.
    rows = [repo.load_segment(seg["key"]) for seg in old.stored_segments()]
    assert [sid for seg in rows for sid in seg.student_ids] == truth(range(5))[0]

    repo.delete_older_versions(current.version)
    # Left: what the current version lists, nothing else.
    assert stored_segment_blobs(repo) == {seg["key"] for seg in current.stored_segments()}
    assert repo.blobs.list(keys.GALLERY_MANIFESTS) == [
        repo.records.get_gallery_pointer().manifest_key
    ]
    assert repo.blobs.list(keys.GALLERY_SNAPSHOTS) == [current.base]
    gallery_module.SNAPSHOTS._items.clear()
    assert_rows(fresh(repo), *truth(range(200)))
    enroll(repo, 200)
    assert_rows(fresh(repo), *truth(range(201)))


def test_rewrite_and_erasure_reach_into_packed_segments(tmp_path):
    repo = repo_at(tmp_path)
    repo.commit(
        np.concatenate([vectors(1, 1000), vectors(1, 1001)]),
        ["ann", "bob"],
        segment_id="pair",
        **META,
    )
    for i in range(100):
        enroll(repo, i)
    assert "parts" in repo.current_manifest().stored_segments()[0]
    warm = fresh(repo)

    # Taking back one enrollment drops its part from the packed segment holding it.
    repo.rewrite(lambda entry, _rows: entry["key"] != keys.segment_key("j7"), "a test")
    # Erasure masks rows of a part.
    erase_face_data(repo.blobs, repo.records, "ann", now=dt.datetime.now(dt.UTC))
    erase_face_data(repo.blobs, repo.records, "s42", now=dt.datetime.now(dt.UTC))

    left = [i for i in range(100) if i not in (7, 42)]
    ids, emb = truth(left)
    manifest = repo.current_manifest()
    assert manifest.embeddings_per_student() == {"bob": 1, **{f"s{i}": 2 for i in left}}
    pair = manifest.all_segments()[0]
    assert pair["key"] != keys.segment_key("pair") and pair["students"] == {"bob": 1}
    for cache in (warm, fresh(repo)):
        cache.refresh()
        assert_rows(cache, ["bob"] + ids, np.concatenate([normalise(vectors(1, 1001)), emb]))
    # No stored segment holds an erased student's rows, nor the taken-back enrollment's.
    stored = stored_segment_blobs(repo)
    assert stored == {seg["key"] for seg in manifest.stored_segments()}
    for key in stored:
        held = set(repo.load_segment(key).student_ids.tolist())
        assert not held & {"ann", "s42", "s7"}
    # Taken back and erased stay out when more enrollments fold and pack.
    for i in range(100, 130):
        enroll(repo, i)
    assert_rows(
        fresh(repo),
        ["bob"] + truth(left + list(range(100, 130)))[0],
        np.concatenate([normalise(vectors(1, 1001)), truth(left + list(range(100, 130)))[1]]),
    )


def test_a_fold_that_loses_its_race_to_an_erasure_leaves_nothing_behind(tmp_path, monkeypatch):
    repo = repo_at(tmp_path)
    for i in range(8):  # one more folds
        enroll(repo, i)
    assert repo.current_manifest().base is None
    other = repo_at(tmp_path)
    records = repo.records
    swap = records.swap_gallery_pointer
    raced = []

    def erasure_first(expected, new, guard=None):
        if not raced:
            raced.append(new.manifest_key)
            # This fold packed s3's rows; the erasure commits first.
            erase_face_data(other.blobs, other.records, "s3", now=dt.datetime.now(dt.UTC))
        return swap(expected, new, guard=guard)

    monkeypatch.setattr(records, "swap_gallery_pointer", erasure_first)
    enroll(repo, 8)
    monkeypatch.undo()

    assert raced
    manifest = repo.current_manifest()
    left = [i for i in range(9) if i != 3]
    assert manifest.embeddings_per_student() == {f"s{i}": 2 for i in left}
    assert_all_listed_stored(repo, manifest)
    # The losing attempt's packed segment and manifest are gone.
    assert not repo.blobs.exists(raced[0])
    for key in stored_segment_blobs(repo):
        assert "s3" not in repo.load_segment(key).student_ids.tolist()
        if keys.packed_version(key) is not None:
            assert manifest.has_segment(key)
    assert_rows(fresh(repo), *truth(left))


def test_a_fold_that_loses_its_race_to_a_commit_loses_nothing(tmp_path, monkeypatch):
    repo = repo_at(tmp_path)
    for i in range(8):
        enroll(repo, i)
    other = repo_at(tmp_path)
    records = repo.records
    swap = records.swap_gallery_pointer
    lost = []

    def other_first(expected, new, guard=None):
        if not lost:
            lost.append(new.manifest_key)
            enroll(other, 100)  # folds and packs too, and wins
        return swap(expected, new, guard=guard)

    monkeypatch.setattr(records, "swap_gallery_pointer", other_first)
    enroll(repo, 8)
    monkeypatch.undo()

    manifest = repo.current_manifest()
    assert sorted(manifest.embeddings_per_student()) == sorted(f"s{i}" for i in [*range(9), 100])
    assert_all_listed_stored(repo, manifest)
    assert not repo.blobs.exists(lost[0])
    packed = {k for k in stored_segment_blobs(repo) if keys.packed_version(k)}
    assert packed == {seg["key"] for seg in manifest.stored_segments() if "parts" in seg}
    cache = fresh(repo)
    assert sorted(cache.student_ids.tolist()) == sorted(
        f"s{i}" for i in [*range(9), 100] for _ in range(2)
    )


def test_a_gallery_stored_before_packing_loads_and_packs_as_it_folds(tmp_path, monkeypatch):
    repo = repo_at(tmp_path)
    with monkeypatch.context() as unpacked:
        # Folds as they were: snapshots listing every enrollment's segment.
        unpacked.setattr(GalleryRepository, "_packed", lambda self, recent, *_: recent)
        unpacked.setattr(GalleryRepository, "_merged", lambda self, entries, *_: entries)
        for i in range(60):
            enroll(repo, i)
    before = repo.current_manifest()
    assert before.base is not None
    assert not any("parts" in seg for seg in before.stored_segments())
    warm = fresh(repo)
    assert_rows(warm, *truth(range(60)))
    for i in range(60, 90):
        enroll(repo, i)
    after = repo.current_manifest().stored_segments()
    assert any("parts" in seg for seg in after) and len(after) < len(before.stored_segments())
    warm.refresh()
    for cache in (warm, fresh(repo)):
        assert_rows(cache, *truth(range(90)))


# --- enrollment ages, for retention, outlive the blobs packing deletes --------------------------

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


class Clock(dt.datetime):
    """A datetime whose now() is what the test says."""

    at = T0

    @classmethod
    def now(cls, tz=None):
        return cls.at.astimezone(tz) if tz else cls.at.replace(tzinfo=None)


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(
        gallery_module,
        "dt",
        types.SimpleNamespace(datetime=Clock, UTC=dt.UTC, timedelta=dt.timedelta),
    )
    Clock.at = T0
    yield Clock
    Clock.at = T0


def legacy_commit(monkeypatch, repo, i, written: dt.datetime, students=None):
    """An enrollment as committed before entries recorded written_at or folds packed, its blob
    last written at ``written``."""
    entry = gallery_module._entry
    with monkeypatch.context() as old:
        old.setattr(
            gallery_module, "_entry", lambda key, ids, pipeline, _at=None: entry(key, ids, pipeline)
        )
        old.setattr(GalleryRepository, "_packed", lambda self, recent, *_: recent)
        old.setattr(GalleryRepository, "_merged", lambda self, entries, *_: entries)
        ids = students or [f"s{i}"] * 2
        repo.commit(vectors(len(ids), i), ids, segment_id=f"j{i}", **META)
    path = repo.blobs.root / keys.segment_key(f"j{i}")
    os.utime(path, (written.timestamp(), written.timestamp()))


def parts_by_job(manifest) -> dict[str, dict]:
    return {keys.segment_job_of(part["key"]): part for part in manifest.all_segments()}


def test_retention_knows_when_packed_enrollments_were_made_once_their_blobs_are_gone(
    tmp_path, clock
):
    repo = repo_at(tmp_path)
    for i in range(20):
        enroll(repo, i)
    clock.at = T0 + dt.timedelta(days=10)
    for i in range(20, 30):
        enroll(repo, i)
    manifest = repo.current_manifest()
    repo.delete_older_versions(manifest.version)
    stored = stored_segment_blobs(repo)
    early = [keys.segment_key(f"j{i}") for i in range(20)]
    assert not set(early) & stored  # packed, and their own blobs deleted
    ages = {job: part["written_at"] for job, part in parts_by_job(manifest).items()}
    assert ages == {f"j{i}": (T0 if i < 20 else clock.at).isoformat() for i in range(30)}

    expired = expire_templates(repo.blobs, repo.records, 5, now=T0 + dt.timedelta(days=12))
    assert expired == sorted(f"s{i}" for i in range(20))
    assert repo.current_manifest().embeddings_per_student() == {f"s{i}": 2 for i in range(20, 30)}
    # What is left kept its ages through the rewrite of the packed segments.
    left = parts_by_job(repo.current_manifest())
    assert {part["written_at"] for part in left.values()} == {clock.at.isoformat()}


def test_legacy_enrollments_keep_their_blobs_age_when_packed_or_rewritten(tmp_path, monkeypatch):
    repo = repo_at(tmp_path)
    now = dt.datetime.now(dt.UTC)
    old = (now - dt.timedelta(days=30)).replace(microsecond=0)
    # The earliest enrollments are old and shared with "ann"; the others are recent.
    legacy_commit(monkeypatch, repo, 0, old, ["ann", "s0", "s0"])
    for i in range(1, 10):
        legacy_commit(monkeypatch, repo, i, old)
    for i in range(10, 20):
        legacy_commit(monkeypatch, repo, i, now)
    assert not any("written_at" in part for part in repo.current_manifest().all_segments())
    # Erasing ann rewrites s0's segment: the new blob is young, the enrollment is not.
    erase_face_data(repo.blobs, repo.records, "ann", now=now)
    rewritten = repo.current_manifest().all_segments()[0]
    assert rewritten["students"] == {"s0": 2}
    assert dt.datetime.fromisoformat(rewritten["written_at"]) == old
    # New enrollments fold, and the folds pack legacy segments.
    for i in range(20, 60):
        enroll(repo, i)
    manifest = repo.current_manifest()
    repo.delete_older_versions(manifest.version)
    parts = parts_by_job(manifest)
    stored = stored_segment_blobs(repo)
    packed_legacy = [
        job for job in (f"j{i}" for i in range(1, 20)) if keys.segment_key(job) not in stored
    ]
    assert packed_legacy  # their own blobs are gone: only their entries say their age
    for job in packed_legacy:
        expected = old if int(job[1:]) < 10 else now
        assert abs(dt.datetime.fromisoformat(parts[job]["written_at"]) - expected) < dt.timedelta(
            seconds=1
        )

    expired = expire_templates(repo.blobs, repo.records, 10, now=now)
    assert expired == sorted(f"s{i}" for i in range(10))


def test_an_erasure_deletes_the_packs_a_writer_died_with(tmp_path, monkeypatch):
    repo = repo_at(tmp_path)
    for i in range(8):  # one more folds
        enroll(repo, i)
    records = repo.records

    def dies(*_args, **_kwargs):
        raise RuntimeError("the process died before moving the pointer")

    monkeypatch.setattr(records, "swap_gallery_pointer", dies)
    with pytest.raises(RuntimeError):
        enroll(repo, 8)
    monkeypatch.undo()
    left_behind = {k for k in stored_segment_blobs(repo) if keys.packed_version(k) is not None}
    assert left_behind and not any(repo.current_manifest().has_segment(k) for k in left_behind)
    assert any("s3" in repo.load_segment(k).student_ids.tolist() for k in left_behind)

    # The erasure's clock is behind the store's: the packs do not look older than it.
    erase_face_data(
        repo.blobs, repo.records, "s3", now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    )
    manifest = repo.current_manifest()
    assert not left_behind & stored_segment_blobs(repo)
    for key in stored_segment_blobs(repo):
        assert "s3" not in repo.load_segment(key).student_ids.tolist()
    assert_all_listed_stored(repo, manifest)
    assert_rows(fresh(repo), *truth([i for i in range(8) if i != 3]))


def test_a_pack_a_writer_died_with_goes_even_when_the_erased_student_is_in_no_version(
    tmp_path, monkeypatch
):
    repo = repo_at(tmp_path)
    for i in range(8):
        enroll(repo, i)
    monkeypatch.setattr(
        repo.records, "swap_gallery_pointer", lambda *a, **k: (_ for _ in ()).throw(SystemError())
    )
    with pytest.raises(SystemError):
        enroll(repo, 8)  # its pack holds s8, whom no version holds
    monkeypatch.undo()
    version = repo.current_manifest().version
    summary = erase_face_data(repo.blobs, repo.records, "s8", now=dt.datetime.now(dt.UTC))
    assert summary["model_version"] == version  # nothing to commit
    assert summary["embeddings_removed"] == 2  # the orphan segment; the pack's copy not again
    for key in stored_segment_blobs(repo):
        assert "s8" not in repo.load_segment(key).student_ids.tolist()
    assert_rows(fresh(repo), *truth(range(8)))


def test_packs_of_an_attempt_still_running_are_kept(tmp_path, monkeypatch):
    repo = repo_at(tmp_path)
    for i in range(8):
        enroll(repo, i)
    records = repo.records
    swap = records.swap_gallery_pointer
    seen = []

    def cleanup_first(expected, new, guard=None):
        # Another process deletes orphan packs while this attempt is about to win.
        seen.append(repo_at(tmp_path).delete_orphan_packs())
        return swap(expected, new, guard=guard)

    monkeypatch.setattr(records, "swap_gallery_pointer", cleanup_first)
    enroll(repo, 8)
    monkeypatch.undo()
    assert seen == [[]]
    manifest = repo.current_manifest()
    assert any("parts" in seg for seg in manifest.stored_segments())
    assert_all_listed_stored(repo, manifest)
    assert_rows(fresh(repo), *truth(range(9)))
