"""A gallery of many students: manifests stay small (older segments fold into snapshots) and a
worker's cache appends what is new instead of rebuilding."""

from __future__ import annotations

import json

import numpy as np

from attendance.stores import gallery as gallery_module
from attendance.stores.blob import LocalBlobStore
from attendance.stores.gallery import GalleryCache, GalleryRepository, Manifest
from attendance.stores.records import SqliteRecords

META = dict(
    model_name="Facenet",
    detector="opencv",
    metric="cosine",
    threshold=0.4,
    pipeline="Facenet/opencv-v1",
)


def repo_at(tmp_path) -> GalleryRepository:
    return GalleryRepository(
        LocalBlobStore(tmp_path / "store"), SqliteRecords(tmp_path / "db.sqlite")
    )


def vectors(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)


def test_recent_segments_fold_into_a_snapshot_and_nothing_is_lost(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery_module, "FOLD_SEGMENTS", 3)
    repo = repo_at(tmp_path)
    cache = GalleryCache(repo, META["pipeline"])
    for i in range(8):
        assert repo.commit(vectors(2, i), [f"s{i}"] * 2, segment_id=f"j{i}", **META) == i + 1
        assert cache.refresh() == i + 1
    manifest = repo.current_manifest()
    assert manifest.base is not None and len(manifest.segments) <= 3
    stored = json.loads(repo.blobs.get(repo.records.get_gallery_pointer().manifest_key))
    assert len(stored["segments"]) <= 3 and stored["base"] == manifest.base
    assert manifest.embeddings_per_student() == {f"s{i}": 2 for i in range(8)}
    assert [s["key"] for s in manifest.all_segments()] == [
        f"gallery/segments/j{i}.npz" for i in range(8)
    ]
    # Redelivered enrollments, folded or recent, add nothing.
    assert repo.commit(vectors(2), ["s0"] * 2, segment_id="j0", **META) == 8
    assert repo.commit(vectors(2), ["s7"] * 2, segment_id="j7", **META) == 8
    # The incrementally built cache equals a fresh one.
    fresh = GalleryCache(repo, META["pipeline"])
    fresh.refresh()
    assert (
        list(cache.student_ids)
        == list(fresh.student_ids)
        == [f"s{i}" for i in range(8) for _ in range(2)]
    )
    assert np.array_equal(cache.embeddings, fresh.embeddings)
    assert (
        Manifest.from_json(
            repo.blobs.get(repo.records.get_gallery_pointer().manifest_key), repo.blobs
        ).embeddings_per_student()
        == fresh.manifest.embeddings_per_student()
    )


def test_a_bulk_commit_of_many_students_folds_at_once(tmp_path):
    repo = repo_at(tmp_path)
    ids = [f"s{i}" for i in range(gallery_module.FOLD_STUDENTS + 1)]
    repo.commit(vectors(len(ids)), ids, segment_id="bulk", **META)
    manifest = repo.current_manifest()
    assert manifest.base is not None and manifest.segments == []
    repo.commit(vectors(1, 1), ["new"], segment_id="one", **META)
    after = repo.current_manifest()
    assert after.base == manifest.base and [s["key"] for s in after.segments] == [
        "gallery/segments/one.npz"
    ]
    assert len(after.embeddings_per_student()) == len(ids) + 1


def test_cache_candidates_are_the_class_rows_and_follow_new_versions(tmp_path):
    repo = repo_at(tmp_path)
    cache = GalleryCache(repo, META["pipeline"])
    repo.commit(vectors(3), ["a", "a", "b"], segment_id="j1", **META)
    cache.refresh()
    only_a = cache.candidates({"a"})
    assert len(only_a) == 2 and set(only_a.students[only_a.codes]) == {"a"}
    assert cache.candidates({"a"}) is only_a  # cached for this version
    repo.commit(vectors(2, 1), ["a", "c"], segment_id="j2", **META)
    cache.refresh()
    assert len(cache.candidates({"a"})) == 3
    assert len(cache.candidates({"a", "b", "c"})) == 5
    assert len(cache.candidates(set())) == 0
