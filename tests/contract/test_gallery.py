"""The gallery (versions, cache, compare-and-set commits) on every pairing of the stores."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from attendance.domain.errors import StoreBusy
from attendance.stores import gallery as gallery_module
from attendance.stores.gallery import GalleryCache, GalleryRepository, Manifest, segment_parts

META = dict(
    model_name="Facenet",
    detector="opencv",
    metric="cosine",
    threshold=0.4,
    pipeline="Facenet/opencv-v1",
)
NEW = {**META, "detector": "centerface", "pipeline": "Facenet/centerface-v1"}


def vectors(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)


def assert_pointer_names_complete_version(repo: GalleryRepository) -> Manifest | None:
    """What readers rely on: the pointer names a manifest, and every segment it lists, stored.
    Those a reader loads, that is: once older versions are deleted, a packed segment's parts
    are stored in it alone."""
    pointer = repo.records.get_gallery_pointer()
    if pointer is None:
        return None
    manifest = repo.current_manifest()  # reads the manifest (and any snapshot it names)
    assert manifest.version == pointer.version
    for seg in manifest.stored_segments():
        assert len(repo.load_segment(seg["key"]).student_ids) == seg["count"]
        assert sum(part["count"] for part in segment_parts(seg)) == seg["count"]
    return manifest


def test_commits_make_versions_and_cache_loads_only_new_segments(repo):
    assert repo.current_manifest() is None
    assert repo.commit(vectors(3), ["a"] * 3, segment_id="j1", **META) == 1
    cache = GalleryCache(repo, META["pipeline"])
    assert cache.refresh() == 1 and cache.embeddings.shape == (3, 128)
    assert repo.commit(vectors(2, 1), ["b", "b"], segment_id="j2", **META) == 2
    first = cache._segments["gallery/segments/j1.npz"]
    assert cache.refresh() == 2
    assert cache._segments["gallery/segments/j1.npz"] is first  # not reloaded
    assert list(cache.student_ids) == ["a", "a", "a", "b", "b"]
    assert np.allclose(np.linalg.norm(cache.embeddings, axis=1), 1.0)
    assert repo.current_manifest().embeddings_per_student() == {"a": 3, "b": 2}
    assert_pointer_names_complete_version(repo)


def test_same_segment_committed_twice_is_added_once(repo):
    assert repo.commit(vectors(2), ["a", "a"], segment_id="job", **META) == 1
    assert repo.commit(vectors(2), ["a", "a"], segment_id="job", **META) == 1
    assert repo.current_manifest().embeddings_per_student() == {"a": 2}


def test_concurrent_commits_lose_nothing(repo):
    with ThreadPoolExecutor(8) as pool:
        versions = list(
            pool.map(
                lambda i: repo.commit(vectors(1, i), [f"s{i}"], segment_id=f"j{i}", **META),
                range(16),
            )
        )
    assert sorted(versions) == list(range(1, 17))
    assert len(repo.current_manifest().embeddings_per_student()) == 16
    assert_pointer_names_complete_version(repo)
    # Losers deleted their manifests: one per version remains.
    assert len(repo.blobs.list("gallery/manifests")) == 16


def test_a_cache_in_another_process_picks_up_new_versions(repo, blob_store, records):
    """Two readers over the same stores (as two workers are): each sees the other's commits."""
    other = GalleryCache(GalleryRepository(blob_store, records), META["pipeline"])
    mine = GalleryCache(repo, META["pipeline"])
    repo.commit(vectors(1), ["a"], segment_id="j1", **META)
    assert other.refresh() == 1
    GalleryRepository(blob_store, records).commit(vectors(1, 1), ["b"], segment_id="j2", **META)
    assert mine.refresh() == 2 and other.refresh() == 2
    assert list(mine.student_ids) == list(other.student_ids) == ["a", "b"]


class FailingBlobs:
    """Passes calls through until ``fail_on(key)`` says a put fails (a store going down)."""

    def __init__(self, inner, fail_on):
        self.inner, self.fail_on = inner, fail_on

    def put(self, key, data, content_type="application/octet-stream"):
        if self.fail_on(key):
            raise StoreBusy(f"injected: the store went down writing {key}")
        return self.inner.put(key, data, content_type)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class FailingSwap:
    def __init__(self, inner):
        self.inner = inner

    def swap_gallery_pointer(self, expected_version, new, **guard):
        raise StoreBusy("injected: the records store went down moving the pointer")

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("fails", ["segment", "manifest", "pointer"])
def test_a_commit_that_fails_halfway_leaves_the_last_complete_version(
    repo, blob_store, records, fails
):
    repo.commit(vectors(2), ["a", "a"], segment_id="j1", **META)
    if fails == "pointer":
        broken = GalleryRepository(blob_store, FailingSwap(records))
    else:
        broken = GalleryRepository(
            FailingBlobs(blob_store, lambda key: key.startswith(f"gallery/{fails}s/")), records
        )
    with pytest.raises(StoreBusy):
        broken.commit(vectors(1, 1), ["b"], segment_id="j2", **META)
    manifest = assert_pointer_names_complete_version(repo)
    assert manifest.version == 1 and manifest.embeddings_per_student() == {"a": 2}
    # The retried job (same segment id) then commits normally.
    assert repo.commit(vectors(1, 1), ["b"], segment_id="j2", **META) == 2
    assert assert_pointer_names_complete_version(repo).embeddings_per_student() == {"a": 2, "b": 1}


# --- one pipeline per gallery: what made the embeddings is recorded, readers keep to theirs ----


def test_segments_record_their_pipeline_and_counts_keep_pipelines_apart(repo):
    repo.commit(vectors(3), ["a"] * 3, segment_id="j1", **META)
    repo.commit(vectors(2, 1), ["a", "b"], segment_id="j2", **NEW)
    manifest = repo.current_manifest()
    assert [seg["pipeline"] for seg in manifest.all_segments()] == [
        "Facenet/opencv-v1",
        "Facenet/centerface-v1",
    ]
    assert manifest.embeddings_per_student() == {"a": 4, "b": 1}
    assert manifest.embeddings_per_student("Facenet/centerface-v1") == {"a": 1, "b": 1}
    assert manifest.embeddings_per_student("Facenet/opencv-v1") == {"a": 3}
    assert manifest.embeddings_by_pipeline() == {
        "Facenet/opencv-v1": {"a": 3},
        "Facenet/centerface-v1": {"a": 1, "b": 1},
    }


def test_a_manifest_written_before_pipelines_reads_as_opencv(repo):
    """Entries of older manifests name no pipeline: Haar cascades made them."""
    import json

    from attendance.stores.records import GalleryPointer

    repo.commit(vectors(2), ["a", "a"], segment_id="old", **META)
    pointer = repo.records.get_gallery_pointer()
    body = json.loads(repo.blobs.get(pointer.manifest_key))
    for seg in body["segments"]:
        del seg["pipeline"]
    body["version"] = 2
    old_key = "gallery/manifests/v00000002-00000000.json"
    repo.blobs.put(old_key, json.dumps(body).encode(), "application/json")
    assert repo.records.swap_gallery_pointer(1, GalleryPointer(2, old_key))

    manifest = repo.current_manifest()
    assert "pipeline" not in manifest.segments[0]
    assert manifest.embeddings_by_pipeline() == {"Facenet/opencv-v1": {"a": 2}}
    opencv, centerface = (
        GalleryCache(repo, "Facenet/opencv-v1"),
        GalleryCache(repo, "Facenet/centerface-v1"),
    )
    assert opencv.refresh() == 2 and centerface.refresh() == 2
    assert list(opencv.student_ids) == ["a", "a"] and len(centerface.embeddings) == 0
    # A commit on top keeps the old entry as it was, and records its own pipeline.
    repo.commit(vectors(1, 1), ["b"], segment_id="new", **NEW)
    assert repo.current_manifest().embeddings_by_pipeline() == {
        "Facenet/opencv-v1": {"a": 2},
        "Facenet/centerface-v1": {"b": 1},
    }


class CountingRepo(GalleryRepository):
    def __init__(self, inner):
        super().__init__(inner.blobs, inner.records)
        self.loaded = []

    def load_segment(self, key):
        self.loaded.append(key)
        return super().load_segment(key)


def test_a_cache_loads_only_the_segments_of_its_pipeline(repo):
    repo.commit(vectors(2), ["a", "a"], segment_id="j1", **META)
    repo.commit(vectors(1, 1), ["b"], segment_id="j2", **NEW)
    repo.commit(vectors(1, 2), ["c"], segment_id="j3", **META)
    counting = CountingRepo(repo)
    cache = GalleryCache(counting, "Facenet/centerface-v1")
    assert cache.refresh() == 3
    assert counting.loaded == ["gallery/segments/j2.npz"]  # the others are never read
    assert list(cache.student_ids) == ["b"]
    old = GalleryCache(repo, "Facenet/opencv-v1")
    old.refresh()
    assert list(old.student_ids) == ["a", "a", "c"]
    # A later commit of the other pipeline moves the version but loads nothing.
    repo.commit(vectors(1, 3), ["d"], segment_id="j4", **META)
    assert cache.refresh() == 4 and counting.loaded == ["gallery/segments/j2.npz"]
    repo.commit(vectors(1, 4), ["e"], segment_id="j5", **NEW)
    assert cache.refresh() == 5 and list(cache.student_ids) == ["b", "e"]


def test_erasure_keeps_the_pipeline_of_each_rewritten_segment(repo):
    from attendance.services.erasure import erase_student

    repo.commit(vectors(3), ["a", "b", "b"], segment_id="j1", **META)
    repo.commit(vectors(3, 1), ["a", "c", "a"], segment_id="j2", **NEW)
    repo.records.upsert_student("a", "A", None)
    summary = erase_student(repo.blobs, repo.records, "a", attendance=False)
    assert summary["embeddings_removed"] == 3
    manifest = repo.current_manifest()
    assert [seg["pipeline"] for seg in manifest.all_segments()] == [
        "Facenet/opencv-v1",
        "Facenet/centerface-v1",
    ]
    assert manifest.embeddings_by_pipeline() == {
        "Facenet/opencv-v1": {"b": 2},
        "Facenet/centerface-v1": {"c": 1},
    }
    cache = GalleryCache(repo, "Facenet/centerface-v1")
    cache.refresh()
    assert list(cache.student_ids) == ["c"]


def test_dropping_other_pipelines_leaves_only_the_current_ones(repo):
    from attendance.services.reembed import drop_other_pipelines

    repo.commit(vectors(2), ["a", "a"], segment_id="j1", **META)
    repo.commit(vectors(1, 1), ["a"], segment_id="j2", **NEW)
    cache = GalleryCache(repo, NEW["pipeline"])
    cache.refresh()
    version, dropped = drop_other_pipelines(repo, NEW["pipeline"])
    assert (version, dropped) == (3, 2)
    manifest = assert_pointer_names_complete_version(repo)
    assert manifest.embeddings_by_pipeline() == {NEW["pipeline"]: {"a": 1}}
    assert repo.blobs.list("gallery/segments/") == ["gallery/segments/j2.npz"]
    assert len(repo.blobs.list("gallery/manifests/")) == 1  # older versions named j1
    assert cache.refresh() == 3 and list(cache.student_ids) == ["a"]
    assert drop_other_pipelines(repo, NEW["pipeline"]) == (3, 0)


def test_a_packed_gallery_is_complete_once_older_versions_are_deleted(repo, monkeypatch):
    monkeypatch.setattr(gallery_module, "FOLD_SEGMENTS", 4)
    monkeypatch.setattr(gallery_module, "PACK_FANIN", 2)
    gallery_module.SNAPSHOTS._items.clear()
    for i in range(12):
        repo.commit(vectors(1, i), [f"s{i}"], segment_id=f"j{i}", **META)
    manifest = repo.current_manifest()
    assert any("parts" in seg for seg in manifest.stored_segments())
    repo.delete_older_versions(manifest.version)
    # The enrollments' own segments are gone; what a reader loads is all there.
    assert not repo.blobs.exists("gallery/segments/j0.npz")
    assert assert_pointer_names_complete_version(repo).embeddings_per_student() == {
        f"s{i}": 1 for i in range(12)
    }
    cache = GalleryCache(repo, META["pipeline"])
    cache.refresh()
    assert list(cache.student_ids) == [f"s{i}" for i in range(12)]
    assert all("written_at" in part for part in manifest.all_segments())
