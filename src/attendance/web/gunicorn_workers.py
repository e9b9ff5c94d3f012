"""gunicorn workers whose own answers are JSON, like every other error of the API.

gunicorn answers a few requests itself, without the app: malformed or oversized ones (400, 414,
431, ...) and, with a 500, a request cut short in its worker: by SIGQUIT (a quick shutdown of
gunicorn) or SIGABRT (the master's ``--timeout``), which raise SystemExit in the request. It
renders those answers as a ``text/html`` page (gunicorn.util.write_error) and has no setting to
change that (benoitc/gunicorn#993, #3246). What it documents is the worker class: the
``worker_class`` setting takes "a Python path to a subclass of gunicorn.workers.base.Worker",
and every bundled worker sends these answers through ``Worker.handle_error``. The classes here
override it: gunicorn still decides the status and logs the request as before; the page it
would have written is replaced by ``{"error": {"code": ..., "message": ...}}``.

    gunicorn -k attendance.web.gunicorn_workers.SyncJsonWorker ...     # the Procfile
    gunicorn -k attendance.web.gunicorn_workers.ThreadJsonWorker --threads 4 ...  # the image

Not named ``...SyncWorker``: gunicorn silently swaps a class of that name for its plain gthread
worker when ``--threads`` is above 1, so SyncJsonWorker refuses ``--threads`` instead.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

# The codes the app's own errors use for the same statuses (web.errors).
_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}
CUT_SHORT_MESSAGE = (
    "the request was cut short before the API answered: its web worker was stopped (a shutdown "
    "or restart of the server, or the request took longer than the server allows); try again"
)
MAX_DETAIL = 500


class _Capture:
    """Stands in for the client's socket while gunicorn writes its page: keeps the bytes,
    sends nothing. Everything else is the real socket's."""

    def __init__(self, sock: Any):
        self._sock = sock
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # already non-blocking: util.write_nonblock leaves the socket as it is

    def setblocking(self, _flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data

    def send(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _status_of(page: bytes) -> tuple[int, str]:
    """The status and reason of the page gunicorn would have sent (500 if there is none)."""
    try:
        _version, status, reason = page.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        return int(status), reason
    except ValueError:
        return 500, HTTPStatus(500).phrase


def error_body(status: int, reason: str, exc: BaseException) -> dict:
    """What the API answers instead of gunicorn's page."""
    code = _CODES.get(status) or reason.lower().replace(" ", "_").replace("-", "_")
    if isinstance(exc, SystemExit):
        message = CUT_SHORT_MESSAGE
    elif status >= 500:
        message = "internal server error"  # as the app says: the details are in the log
    else:
        detail = str(exc)[:MAX_DETAIL]
        message = f"{reason}: {detail}" if detail else reason
    return {"error": {"code": code, "message": message}}


def json_error_response(status: int, reason: str, exc: BaseException) -> bytes:
    body = json.dumps(error_body(status, reason, exc)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrors:
    """Mixin for a gunicorn worker: its own error answers are the API's JSON."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        page = _Capture(client)
        super().handle_error(req, page, addr, exc)  # type: ignore[misc]
        status, reason = _status_of(page.data)
        try:
            util.write_nonblock(client, json_error_response(status, reason, exc))
        except Exception:
            self.log.debug("Failed to send error message.")  # type: ignore[attr-defined]


class SyncJsonWorker(JsonErrors, SyncWorker):
    """gunicorn's sync worker (one request at a time), answering its own errors in JSON."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        if cfg.threads > 1:
            raise RuntimeError(
                f"{cls.__module__}.{cls.__name__} serves one request at a time; with "
                f"--threads {cfg.threads} use {cls.__module__}.ThreadJsonWorker"
            )


class ThreadJsonWorker(JsonErrors, ThreadWorker):
    """gunicorn's gthread worker (``--threads``), answering its own errors in JSON."""
