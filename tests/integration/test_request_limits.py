"""What the API answers at the edge of its limits, through a real gunicorn, as the README says.

gunicorn refuses an over-long request line or over-large headers itself, before the app sees the
request; the Procfile's worker class (attendance.web.gunicorn_workers) makes that answer the
API's JSON too instead of gunicorn's text/html page: these tests pin the limits, statuses and
codes the README's API section documents. They also send,
byte for byte, a multipart body no client library would produce: a filename holding a raw CR
or LF.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests import redis_db, tokens
from tests.conftest import REPO, redis_url_for, stop_process
from tests.emulators import free_port
from tests.integration.test_api_errors import BOUNDARY, image_bytes, raw_multipart

pytestmark = [pytest.mark.redis, pytest.mark.integration, pytest.mark.timeout(180)]

# A Redis database no other suite uses (see tests/conftest.py and the other modules).
DB = 4
# gunicorn's defaults (limit_request_line, limit_request_field_size, limit_request_fields),
# which the Procfile and the Dockerfile keep.
REQUEST_LINE_LIMIT = 4094
HEADER_FIELD_LIMIT = 8190
HEADER_FIELDS_LIMIT = 100


def api_section() -> str:
    readme = (REPO / "README.md").read_text()
    return readme.split("## The API (v1)", 1)[1].split("\n## ", 1)[0]


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    """The API as the Procfile runs it (one sync worker), on a free loopback port."""
    tmp: Path = tmp_path_factory.mktemp("limits")
    url = redis_url_for(DB)
    redis_db.flush(url)
    port = free_port()
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "REDIS_URL": url,
        "ATTENDANCE_BLOB_STORE_URL": f"file://{tmp}/store",
        "ATTENDANCE_RECORDS_URL": f"sqlite:///{tmp}/attendance.db",
        "ATTENDANCE_API_TOKENS": tokens.TOKENS_JSON,
        "ATTENDANCE_API_TOKENS_FILE": str(tmp / "no-tokens-file.json"),
    }
    log_path = tmp / "gunicorn.log"
    with open(log_path, "ab") as log:
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--worker-class",
                "attendance.web.gunicorn_workers.SyncJsonWorker",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--control-socket",
                str(tmp / "gunicorn.ctl"),
                "attendance.web.app:create_app()",
            ],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert web.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield port, tmp
    finally:
        stop_process(web)
        redis_db.flush(url)


def send(port: int, head: bytes, body: bytes = b"") -> tuple[int, str, bytes]:
    """Send raw bytes; return the status, the Content-Type and the body of the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    conn.sock.sendall(head + body)
    response = http.client.HTTPResponse(conn.sock, method=head.split(b" ", 1)[0].decode())
    response.begin()
    data = response.read()
    conn.close()
    return response.status, response.getheader("Content-Type", ""), data


def get_with(port: int, target: bytes, headers: list[bytes] = ()) -> tuple[int, str, bytes]:
    head = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    return send(port, head + b"".join(h + b"\r\n" for h in headers) + b"\r\n")


def test_the_readme_documents_gunicorns_own_limits():
    section = api_section()
    for text in (
        f"{REQUEST_LINE_LIMIT} bytes",
        "414",
        f"{HEADER_FIELD_LIMIT} bytes",
        f"{HEADER_FIELDS_LIMIT} header",
        "431",
        "`uri_too_long`",
        "`request_header_fields_too_large`",
    ):
        assert text in section, text


def request_line_of(length: int) -> bytes:
    prefix, suffix = b"GET /healthz?q=", b" HTTP/1.1"
    return prefix + b"a" * (length - len(prefix) - len(suffix)) + suffix


def test_a_request_line_over_the_limit_gets_414(gunicorn):
    port, _ = gunicorn
    target = request_line_of(REQUEST_LINE_LIMIT)[len(b"GET ") : -len(b" HTTP/1.1")]
    status, ctype, _ = get_with(port, target)
    assert (status, ctype) == (200, "application/json")

    target = request_line_of(REQUEST_LINE_LIMIT + 1)[len(b"GET ") : -len(b" HTTP/1.1")]
    status, ctype, body = get_with(port, target)
    assert (status, ctype) == (414, "application/json"), (status, ctype)
    error = json.loads(body)["error"]
    assert error["code"] == "uri_too_long"
    assert f"> {REQUEST_LINE_LIMIT}" in error["message"]


def test_headers_over_the_limits_get_431(gunicorn):
    port, _ = gunicorn
    # A field's size counts its whole line: "Name: value" and the CRLF.
    pad = len(b"X-Pad: \r\n")
    fine = [b"X-Pad: " + b"b" * (HEADER_FIELD_LIMIT - pad)]
    assert get_with(port, b"/healthz", fine)[0] == 200
    over = [b"X-Pad: " + b"b" * (HEADER_FIELD_LIMIT - pad + 1)]
    status, ctype, body = get_with(port, b"/healthz", over)
    assert (status, ctype) == (431, "application/json")
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"

    # Host and Connection are two of the fields.
    many = [b"X-H%d: 1" % i for i in range(HEADER_FIELDS_LIMIT - 2)]
    assert get_with(port, b"/healthz", many)[0] == 200
    status, ctype, body = get_with(port, b"/healthz", many + [b"X-One-Too-Many: 1"])
    assert (status, ctype) == (431, "application/json")
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"


def test_unparseable_http_gets_400_json(gunicorn):
    port, _ = gunicorn
    status, ctype, body = send(port, b"GET /healthz HTTP/9.x\r\nHost: 127.0.0.1\r\n\r\n")
    assert (status, ctype) == (400, "application/json")
    assert json.loads(body)["error"]["code"] == "bad_request"


@pytest.mark.parametrize("bad_name", [b"cut\rhere.png", b"cut\nhere.png"])
def test_a_raw_cr_or_lf_in_a_filename_is_refused_over_http(gunicorn, bad_name):
    port, tmp = gunicorn
    body = raw_multipart(
        {"student_id": "s-001", "name": "Ada"},
        [(f"{i}.png".encode(), image_bytes()) for i in range(5)] + [(bad_name, image_bytes())],
    )
    head = (
        f"POST /api/v1/students HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {tokens.ADMIN}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    status, ctype, data = send(port, head, body)
    assert (status, ctype) == (400, "application/json"), data
    message = re.sub(r"\s+", " ", data.decode())
    assert '"code":"photos_part_not_a_file"' in message.replace(" ", "")
    assert "1 of the 6 parts named photos" in message
    store = tmp / "store" / "uploads"
    assert not store.exists() or not any(store.iterdir())
    assert redis_db.client(redis_url_for(DB)).keys("attendance:job:*") == []
