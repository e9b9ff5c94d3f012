"""Logs never carry secrets or biometric data: no bearer token, no embedding, no image bytes.

A real enrollment and a real recognition run through the `stack` fixture (the API in process,
one Celery worker process running FaceNet), with the admin token in the Authorization header.
Then the web's log records (captured at DEBUG) and the worker's log file are searched for the
token (and its SHA-256), runs of floats shaped like an embedding, JPEG/PNG magic bytes and long
base64 (or hex) blobs.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import time

import pytest

from attendance.domain.auth import hash_token
from tests import tokens
from tests.consent import CONSENT_FORM

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(600),
]

FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?"
# 20 or more floats in a row, as json/str(list) ("0.1, -0.2, ...") or numpy ("[ 0.1 -0.2 ...").
COMMA_FLOATS = re.compile(rf"(?:{FLOAT}\s*,\s*){{19,}}{FLOAT}")
SPACE_FLOATS = re.compile(rf"(?:{FLOAT}\s+){{19,}}{FLOAT}")
BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_-]{200,}={0,2}")
HEX_BLOB = re.compile(r"(?:\\x[0-9a-fA-F]{2}|[0-9a-fA-F]{2}){100,}")
# Image signatures as raw bytes, as Python prints bytes (b'\xff\xd8...'), and in base64.
IMAGE_MARKERS = {
    "JPEG magic bytes": [b"\xff\xd8\xff", rb"\xff\xd8\xff", b"/9j/"],
    "PNG magic bytes": [b"\x89PNG", rb"\x89PNG", b"iVBORw0KGgo"],
    "JFIF header": [b"JFIF", b"Exif\x00\x00"],
}
WRONG_TOKEN = "wrong-secret-token-4711-never-log-me"


def _post(stack, path: str, data: dict) -> str:
    resp = stack.client.post(path, data=data, content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["job_id"]


def _photos(faces_dir, *names: str) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO((faces_dir / name).read_bytes()), name) for name in names]


def _worker_log(stack, must_contain: list[str], timeout: float = 30) -> bytes:
    """The worker's log once it has written the lines for our jobs (it flushes on its own)."""
    path = stack.root / "worker-w1.log"
    deadline = time.monotonic() + timeout
    while True:
        data = path.read_bytes()
        if all(s.encode() in data for s in must_contain) or time.monotonic() > deadline:
            return data
        time.sleep(0.2)


def _problems(name: str, raw: bytes, image_bytes: list[bytes]) -> list[str]:
    text = raw.decode("utf-8", errors="replace")
    found = []
    for secret, what in (
        (tokens.ADMIN, "the admin token"),
        (WRONG_TOKEN, "a presented token"),
        (hash_token(tokens.ADMIN), "the admin token's hash"),
    ):
        if secret in text:
            found.append(f"{name}: {what}")
    for pattern, what in (
        (COMMA_FLOATS, "an embedding-like run of floats"),
        (SPACE_FLOATS, "an embedding-like run of floats (numpy)"),
        (BASE64_BLOB, "a base64 blob over 200 chars"),
        (HEX_BLOB, "a hex/escaped-bytes blob"),
    ):
        match = pattern.search(text)
        if match:
            found.append(f"{name}: {what}: {match.group(0)[:120]!r}...")
    for what, markers in IMAGE_MARKERS.items():
        for marker in markers:
            if marker in raw:
                at = raw.index(marker)
                found.append(f"{name}: {what} {marker!r} at byte {at}: {raw[at - 40 : at + 40]!r}")
    # A slice of a photo that went through the API, raw or base64-encoded.
    for photo in image_bytes:
        for chunk in (photo[1000:1032], base64.b64encode(photo[999:1047])):
            if chunk in raw:
                found.append(f"{name}: a piece of an uploaded photo")
    return found


def test_patterns_catch_what_they_should():
    """The detectors themselves: each one fires on what it is meant to find."""
    embedding = [0.0123 * (i - 64) for i in range(128)]
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 2
    samples = {
        "token": f"Authorization: Bearer {tokens.ADMIN}".encode(),
        "json floats": str(embedding).encode(),
        "numpy floats": " ".join(f"{x:.6f}" for x in embedding).encode(),
        "raw jpeg": jpeg,
        "repr jpeg": repr(jpeg).encode(),
        "base64 jpeg": base64.b64encode(jpeg),
    }
    for label, raw in samples.items():
        assert _problems(label, raw, []), label
    clean = (
        b"[2026-11-25 10:00:01,123: INFO/ForkPoolWorker-1] Task attendance.recognize"
        b"[6f1c...] succeeded in 0.41s: {'job_id': '6f1c', 'state': 'succeeded'}\n"
        b"gallery version 3 committed (4 new embeddings) 0.45 0.5 1.0\n"
    )
    assert _problems("clean", clean, []) == []


def test_logs_hold_no_token_embedding_or_image(stack, faces_dir, caplog):
    caplog.set_level(logging.DEBUG)
    photos = [(faces_dir / n).read_bytes() for n in ("img2.jpg", "couple.jpg")]

    # Enrollment: img2.jpg is accepted; couple.jpg (two faces) is rejected with its reason.
    enroll_id = _post(
        stack,
        "/api/v1/students",
        {
            "student_id": "jolie",
            "name": "Angelina Jolie",
            "class_id": "room-1",
            "photos": _photos(faces_dir, "img2.jpg", "couple.jpg"),
            **CONSENT_FORM,
        },
    )
    job = stack.wait_for_job(enroll_id)
    assert job["state"] == "succeeded", job
    assert job["result"]["accepted_photos"] == 1, job
    assert [r["filename"] for r in job["result"]["rejected"]] == ["couple.jpg"], job

    recognise_id = _post(
        stack,
        "/api/v1/recognitions",
        {"class_id": "room-1", "date": "2026-11-25", "photos": _photos(faces_dir, "couple.jpg")},
    )
    job = stack.wait_for_job(recognise_id)
    assert job["state"] == "succeeded", job
    assert job["result"]["present"] == ["jolie"], job

    # Reads that send image bytes and embeddings-derived data back through the API.
    annotated = stack.client.get(f"/api/v1/annotated/{recognise_id}/0")
    assert annotated.status_code == 200 and annotated.data[:3] == b"\xff\xd8\xff"
    photos.append(annotated.data)
    for path in (
        "/api/v1/model",
        "/api/v1/students/jolie",
        "/api/v1/attendance?class_id=room-1&date=2026-11-25",
    ):
        assert stack.client.get(path).status_code == 200, path
    # A wrong token is refused, and is no more loggable than a right one.
    refused = stack.client.get("/api/v1/model", headers=tokens.bearer(WRONG_TOKEN))
    assert refused.status_code == 401

    worker_log = _worker_log(stack, [f"job {enroll_id} succeeded", f"job {recognise_id} succeeded"])
    # The log really is the worker's, and covers both jobs (else the search proves nothing).
    assert f"job {enroll_id} succeeded".encode() in worker_log, worker_log[-3000:]
    assert f"job {recognise_id} succeeded".encode() in worker_log, worker_log[-3000:]

    web_log = "\n".join(
        f"{r.levelname} {r.name}: {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    web_log += "\n" + caplog.text
    problems = _problems("worker-w1.log", worker_log, photos) + _problems(
        "web log", web_log.encode(), photos
    )
    print(
        f"\nchecked {len(worker_log)} bytes of worker log and {len(caplog.records)} web log records"
    )
    assert problems == [], "\n".join(problems)
