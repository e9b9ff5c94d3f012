"""The gallery (versions, cache, compare-and-set commits) on every pairing of the stores."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from common.errors import StoreBusy
from common.gallery import GalleryCache, GalleryRepository, Manifest

META = dict(model_name="Facenet", detector="opencv", metric="cosine", threshold=0.4)


def vectors(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)


def assert_pointer_names_complete_version(repo: GalleryRepository) -> Manifest | None:
    """What readers rely on: the pointer names a manifest, and every segment it lists, stored."""
    pointer = repo.records.get_gallery_pointer()
    if pointer is None:
        return None
    manifest = repo.current_manifest()  # reads the manifest (and any snapshot it names)
    assert manifest.version == pointer.version
    segments = manifest.all_segments() if hasattr(manifest, "all_segments") else manifest.segments
    for seg in segments:
        assert len(repo.load_segment(seg["key"]).student_ids) == seg["count"]
    return manifest


def test_commits_make_versions_and_cache_loads_only_new_segments(repo):
    assert repo.current_manifest() is None
    assert repo.commit(vectors(3), ["a"] * 3, segment_id="j1", **META) == 1
    cache = GalleryCache(repo)
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
        versions = list(pool.map(
            lambda i: repo.commit(vectors(1, i), [f"s{i}"], segment_id=f"j{i}", **META),
            range(16),
        ))
    assert sorted(versions) == list(range(1, 17))
    assert len(repo.current_manifest().embeddings_per_student()) == 16
    assert_pointer_names_complete_version(repo)
    # Losers deleted their manifests: one per version remains.
    assert len(repo.blobs.list("gallery/manifests")) == 16


def test_a_cache_in_another_process_picks_up_new_versions(repo, blob_store, records):
    """Two readers over the same stores (as two workers are): each sees the other's commits."""
    other = GalleryCache(GalleryRepository(blob_store, records))
    mine = GalleryCache(repo)
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
            FailingBlobs(blob_store, lambda key: key.startswith(f"gallery/{fails}s/")), records)
    with pytest.raises(StoreBusy):
        broken.commit(vectors(1, 1), ["b"], segment_id="j2", **META)
    manifest = assert_pointer_names_complete_version(repo)
    assert manifest.version == 1 and manifest.embeddings_per_student() == {"a": 2}
    # The retried job (same segment id) then commits normally.
    assert repo.commit(vectors(1, 1), ["b"], segment_id="j2", **META) == 2
    assert assert_pointer_names_complete_version(repo).embeddings_per_student() == {
        "a": 2, "b": 1}
