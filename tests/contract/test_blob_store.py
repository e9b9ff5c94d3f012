"""The BlobStore contract, on local files and on GCS (gcp-storage-emulator over HTTP)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from attendance.domain.errors import NotFound


def test_put_get_round_trip_of_any_bytes(blob_store):
    data = bytes(range(256)) * 3
    blob_store.put("uploads/job1/000.jpg", data, "image/jpeg")
    assert blob_store.get("uploads/job1/000.jpg") == data
    assert blob_store.exists("uploads/job1/000.jpg")


def test_put_replaces_the_whole_object(blob_store):
    blob_store.put("k/v.json", b"a much longer first version", "application/json")
    blob_store.put("k/v.json", b"short", "application/json")
    assert blob_store.get("k/v.json") == b"short"


def test_empty_and_large_objects(blob_store):
    big = os.urandom(9 * 1024 * 1024)  # over google's single-request upload size
    blob_store.put("big/photo.bin", big)
    blob_store.put("big/empty.bin", b"")
    assert blob_store.get("big/photo.bin") == big
    assert blob_store.get("big/empty.bin") == b""


def test_missing_key_is_not_found(blob_store):
    with pytest.raises(NotFound) as info:
        blob_store.get("annotated/nope/000.jpg")
    assert info.value.status == 404 and "annotated/nope/000.jpg" in info.value.message
    assert not blob_store.exists("annotated/nope/000.jpg")


def test_delete_removes_and_tolerates_missing_keys(blob_store):
    blob_store.put("uploads/j/0.png", b"x")
    blob_store.delete("uploads/j/0.png")
    assert not blob_store.exists("uploads/j/0.png")
    blob_store.delete("uploads/j/0.png")  # again: nothing to do, no error
    blob_store.delete("never/was.txt")


def test_list_is_sorted_recursive_and_by_whole_path_segments(blob_store):
    keys = [
        "gallery/segments/b.npz",
        "gallery/segments/a.npz",
        "gallery/manifests/v1.json",
        "gallery/x/deep/er.bin",
        "gallerything/no.bin",
        "uploads/1/000.jpg",
    ]
    for key in keys:
        blob_store.put(key, key.encode())
    assert blob_store.list("gallery") == sorted(k for k in keys if k.startswith("gallery/"))
    assert blob_store.list("gallery/segments") == [
        "gallery/segments/a.npz",
        "gallery/segments/b.npz",
    ]
    assert blob_store.list("gallery/segments/") == blob_store.list("gallery/segments")
    assert blob_store.list("gallery/seg") == []  # not a prefix of names, a folder
    assert blob_store.list("nothing/here") == []
    assert blob_store.list("") == sorted(keys)


def test_list_follows_every_page(blob_store):
    # The GCS fixture lists 2 per page, so this takes several pages.
    keys = [f"many/{i:03d}.bin" for i in range(11)]
    for key in keys:
        blob_store.put(key, b"1")
    assert blob_store.list("many") == keys


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/abs", "a//b", "a/./b", "a/../b", "", "sp ace", "a\\b", "uploads/x?y"]
)
def test_unsafe_keys_are_refused_before_any_io(blob_store, key):
    for call in (
        lambda: blob_store.put(key, b"x"),
        lambda: blob_store.get(key),
        lambda: blob_store.exists(key),
        lambda: blob_store.delete(key),
    ):
        with pytest.raises(ValueError):
            call()


def test_concurrent_puts_all_land(blob_store):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: blob_store.put(f"par/{i:02d}", str(i).encode()), range(24)))
    assert blob_store.list("par") == [f"par/{i:02d}" for i in range(24)]
    assert all(blob_store.get(f"par/{i:02d}") == str(i).encode() for i in range(24))


def test_ping_answers_when_usable(blob_store):
    blob_store.ping()


def test_list_older_than(blob_store):
    import datetime as dt

    blob_store.put("uploads/j1/000.jpg", b"a")
    blob_store.put("annotated/j1/000.jpg", b"b")
    now = dt.datetime.now(dt.UTC)
    later = now + dt.timedelta(minutes=5)
    earlier = now - dt.timedelta(minutes=5)
    assert blob_store.list_older_than("uploads", later) == ["uploads/j1/000.jpg"]
    assert blob_store.list_older_than("uploads", earlier) == []
    assert blob_store.list_older_than("nothing-here", later) == []


def test_modified_at_is_when_a_key_was_last_written(blob_store):
    import datetime as dt

    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    blob_store.put("gallery/segments/j1.npz", b"a")
    at = blob_store.modified_at("gallery/segments/j1.npz")
    assert at.tzinfo is not None
    assert before < at < dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    # As list_older_than compares it.
    assert blob_store.list_older_than("gallery", at + dt.timedelta(seconds=1)) == [
        "gallery/segments/j1.npz"
    ]
    with pytest.raises(NotFound):
        blob_store.modified_at("gallery/segments/nope.npz")
