import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from common.blobstore import LocalBlobStore
from common.gallery import GalleryCache, GalleryRepository
from common.records import SqliteRecords
from common.schemas import AttendanceRecord

META = dict(model_name="Facenet", detector="opencv", metric="cosine", threshold=0.4)


@pytest.fixture
def repo(tmp_path):
    return GalleryRepository(LocalBlobStore(tmp_path / "store"),
                             SqliteRecords(tmp_path / "db.sqlite"))


def vectors(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)


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


def test_pointer_swap_is_conditional(tmp_path):
    from common.records import GalleryPointer

    records = SqliteRecords(tmp_path / "db.sqlite")
    assert records.swap_gallery_pointer(0, GalleryPointer(1, "k1"))
    assert not records.swap_gallery_pointer(0, GalleryPointer(1, "k-other"))
    assert records.get_gallery_pointer() == GalleryPointer(1, "k1")


def test_attendance_is_recorded_once_per_class_date_student(tmp_path):
    records = SqliteRecords(tmp_path / "db.sqlite")
    records.upsert_student("ann", "Ann", "c1")
    records.upsert_student("ann", "Ann B", "c2")
    assert records.get_student("ann").class_ids == ["c1", "c2"]
    assert records.get_student("ann").name == "Ann B"
    rec = AttendanceRecord(class_id="c1", date=dt.date(2026, 1, 5), student_id="ann", name="Ann",
                           first_seen_at=dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc),
                           distance=0.2)
    assert records.mark_present(rec) is True
    assert records.mark_present(rec.model_copy(update={"distance": 0.1})) is False
    assert records.mark_present(rec.model_copy(update={"date": dt.date(2026, 1, 6)})) is True
    assert len(records.list_attendance(class_id="c1")) == 2
    got = records.list_attendance(class_id="c1", date_from=dt.date(2026, 1, 6))
    assert [r.date for r in got] == [dt.date(2026, 1, 6)]
    assert records.list_attendance(student_id="bob") == []
    assert records.class_exists("c2") and not records.class_exists("c9")
