"""Identifiers and blob keys are plain name segments: nothing a client sends can name a parent,
the store's root, a hidden file or a path with a newline in it."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attendance.domain.errors import ValidationFailed
from attendance.domain.schemas import validate_identifier
from attendance.stores.blob import LocalBlobStore, check_key, check_prefix
from attendance.web.forms import is_job_id

ALLOWED = string.ascii_letters + string.digits + "._-"


def accepted(value: str) -> bool:
    try:
        validate_identifier(value, "student_id")
    except ValidationFailed:
        return False
    return True


@pytest.mark.parametrize(
    "bad",
    [
        ".",
        "..",
        "sec-x\n",
        "sec-x\r",
        "a\nb",
        "\nx",
        ".hidden",
        "-x",
        "_x",
        "a/b",
        "a\\b",
        "x" * 65,
        "",
        " x",
        "x ",
        "é",
        "a\x00",
    ],
)
def test_identifiers_that_are_not_a_plain_segment_are_refused(bad):
    assert not accepted(bad)


@given(st.text(max_size=80))
def test_an_accepted_identifier_is_one_safe_key_segment(value):
    if accepted(value):
        assert 1 <= len(value) <= 64
        assert set(value) <= set(ALLOWED) and value[0].isalnum()
        assert value not in (".", "..")
        assert check_key(f"students/{value}/photo.jpg")
        assert check_prefix(f"students/{value}/")


@given(st.text(alphabet=ALLOWED, min_size=1, max_size=64))
def test_every_identifier_of_the_documented_alphabet_starting_alnum_is_accepted(value):
    assert accepted(value) == value[0].isalnum()


@given(st.text(max_size=40))
def test_job_ids_are_32_lowercase_hex_and_nothing_else(value):
    assert is_job_id(value) == (len(value) == 32 and set(value) <= set("0123456789abcdef"))


@pytest.mark.parametrize("bad", ["a" * 32 + "\n", "A" * 32, "a" * 31, "a" * 33])
def test_job_ids_with_anything_around_them_are_refused(bad):
    assert not is_job_id(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "students/./",
        "students/../",
        "..",
        ".",
        "students/x\n/",
        "/students",
        "students//x",
        "x\n",
        "a/./b",
    ],
)
def test_unsafe_prefixes_and_keys_are_refused(tmp_path, bad):
    store = LocalBlobStore(tmp_path / "store")
    with pytest.raises(ValueError):
        store.list(bad)
    with pytest.raises(ValueError):
        check_key(bad.removesuffix("/") or ".")


@given(st.lists(st.sampled_from(["a", ".", "..", "b.c", "", "x\n", "-"]), min_size=1, max_size=4))
def test_a_key_is_checked_segment_by_segment(parts):
    key = "/".join(parts)
    ok = all(p and p not in (".", "..") and set(p) <= set(ALLOWED) for p in parts)
    try:
        check_key(key)
    except ValueError:
        assert not ok
    else:
        assert ok


def test_listing_a_prefix_never_leaves_it(tmp_path):
    store = LocalBlobStore(tmp_path / "store")
    store.put("students/ann/1.jpg", b"a")
    store.put("students/ben/1.jpg", b"b")
    assert store.list("students/ann/") == ["students/ann/1.jpg"]
    assert store.list("") == ["students/ann/1.jpg", "students/ben/1.jpg"]
