"""Erasure leaves nothing of a student in any store; the audit log says who did what."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from tests import tokens
from tests.consent import CONSENT_FORM


def files(paths):
    return [(io.BytesIO(Path(p).read_bytes()), Path(p).name) for p in paths]


def post(stack, url, data):
    resp = stack.client.post(url, data=data, content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    return stack.wait_for_job(resp.get_json()["job_id"])


def traces(root: Path, needle: str) -> list[str]:
    """Every stored file whose name or bytes hold the id (UTF-8, or UTF-32 as numpy stores it)."""
    patterns = [needle.encode(), needle.encode("utf-32-le")]
    found = []
    for path in root.rglob("*"):
        if path.is_file() and (
            needle in str(path.relative_to(root)) or any(p in path.read_bytes() for p in patterns)
        ):
            found.append(str(path.relative_to(root)))
    return found


def test_erasure_removes_student_everywhere(stack, faces_dir, celeb_dir):
    enrolled = post(
        stack,
        "/api/v1/students",
        {
            "student_id": "erase-me",
            "name": "Angelina Jolie",
            "class_id": "priv",
            "photos": files([faces_dir / "img2.jpg", faces_dir / "img4.jpg"]),
            **CONSENT_FORM,
        },
    )
    assert enrolled["state"] == "succeeded", enrolled
    ben = sorted((celeb_dir / "train" / "ben_afflek").glob("*.jpg"))[:3]
    ben_job = post(
        stack,
        "/api/v1/students",
        {
            "student_id": "ben",
            "name": "Ben",
            "class_id": "priv",
            "photos": files(ben),
            **CONSENT_FORM,
        },
    )
    assert ben_job["state"] == "succeeded", ben_job
    seen = post(
        stack,
        "/api/v1/recognitions",
        {"class_id": "priv", "date": "2026-11-06", "photos": files([faces_dir / "couple.jpg"])},
    )
    assert seen["result"]["present"] == ["erase-me"]
    store = stack.root / "store"
    assert traces(store, "erase-me")  # the check below can see them

    # Only an admin may erase.
    for token in (tokens.TEACHER, tokens.VIEWER):
        resp = stack.client.delete("/api/v1/students/erase-me", headers=tokens.bearer(token))
        assert resp.status_code == 403
    resp = stack.client.delete("/api/v1/students/erase-me?attendance=true")
    assert resp.status_code == 200, resp.get_json()
    summary = resp.get_json()
    assert summary["embeddings_removed"] == 2 and summary["attendance_removed"] == 1
    assert summary["photos_removed"] >= 2 + 2 + 1 + 1  # kept, uploads, class photo, annotated

    # Nothing of them in the blob store: no photo, no embedding, no gallery version naming them.
    assert traces(store, "erase-me") == []
    for prefix in (
        f"uploads/{enrolled['job_id']}",
        f"uploads/{seen['job_id']}",
        f"annotated/{seen['job_id']}",
    ):
        assert not (store / prefix).exists() or not any((store / prefix).iterdir())
    # Nor in the records, but for the audit log's note of the erasure itself.
    db = sqlite3.connect(stack.settings.records_url.removeprefix("sqlite:///"))
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if table in ("audit", "erasures", "sqlite_sequence"):
            continue  # who erased them, and the tombstone (the id and when) that keeps it so
        for row in db.execute(f"SELECT * FROM {table}"):
            assert "erase-me" not in repr(row), (table, row)
    db.close()

    # The gallery has a new version without them; the other student is untouched, and the
    # worker picks it up: their photo is now an unknown face.
    model = stack.client.get("/api/v1/model").get_json()
    assert (
        model["version"] == summary["model_version"]
        and model["embeddings"] == ben_job["result"]["accepted_photos"]
    )
    again = post(
        stack,
        "/api/v1/recognitions",
        {"class_id": "priv", "date": "2026-11-07", "photos": files([faces_dir / "img5.jpg"])},
    )
    assert again["state"] == "succeeded", again
    assert [f["student_id"] for f in again["result"]["photos"][0]["faces"]] == [None]
    again = stack.client.delete("/api/v1/students/erase-me")
    assert again.status_code == 200 and again.get_json()["embeddings_removed"] == 0

    # The audit log: who enrolled, erased and exported.
    assert (
        stack.client.get(
            "/api/v1/attendance?class_id=priv&format=csv", headers=tokens.bearer(tokens.VIEWER)
        ).status_code
        == 403
    )
    csv = stack.client.get(
        "/api/v1/attendance?class_id=priv&format=csv", headers=tokens.bearer(tokens.TEACHER)
    )
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert (
        csv.data.decode("utf-8-sig").splitlines()[0].startswith("class_id,date,period,student_id")
    )
    assert (
        stack.client.get("/api/v1/audit", headers=tokens.bearer(tokens.TEACHER)).status_code == 403
    )
    entries = stack.client.get("/api/v1/audit?limit=50").get_json()["entries"]
    actions = [(e["actor"], e["action"], e["target"]) for e in entries]
    assert ("teacher", "export_attendance", "priv") == actions[0]
    assert ("admin", "delete_student", "erase-me") in actions
    assert ("admin", "enroll", "ben") in actions
