"""Every 4xx/5xx leaves the API as ``{"error": {"code": ..., "message": ...}}``.

That includes werkzeug's own errors (unknown route, wrong method, body over MAX_CONTENT_LENGTH)
and unexpected exceptions, so clients and fuzzers only ever have to parse one error shape.
"""

from __future__ import annotations

import errno
import logging

import kombu.exceptions
import redis.exceptions
from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from attendance.domain.errors import AppError, StorageFull

log = logging.getLogger(__name__)

# What a request sees when Redis (job state and broker) is down or unreachable.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)

# werkzeug names some statuses in words clients should not have to know ("Request Entity Too
# Large"); these are the codes the API documents instead.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
}


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def _http_message(exc: HTTPException) -> str:
    if exc.code == 404:
        return f"no such resource: {request.path}"
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
        return f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}"
    return exc.description or exc.name


def _raised_in(exc: BaseException) -> str:
    """The qualified name of the function that raised ``exc`` (its innermost frame)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_qualname


def _too_large(exc: HTTPException) -> tuple[str, str]:
    """The code and message of a 413 from werkzeug, naming the limit that was exceeded."""
    # werkzeug raises the same bare RequestEntityTooLarge for three different limits; where it
    # was raised says which (tests/integration/test_api_errors.py pins each of them).
    config = current_app.config
    where = _raised_in(exc)
    if where in ("MultipartDecoder.receive_data", "MultiPartParser.parse"):
        limit_kb = (config.get("MAX_FORM_MEMORY_SIZE") or 0) / 1000
        return "form_field_too_large", (
            f"a text field of the form (or a part's headers) is larger than the {limit_kb:g} KB "
            "allowed; photos must be sent as files"
        )
    if where == "MultipartDecoder.next_event":
        return "too_many_form_parts", (
            f"the form has more than the {config.get('MAX_FORM_PARTS')} parts allowed"
        )
    limit_mb = (config.get("MAX_CONTENT_LENGTH") or 0) / (1024 * 1024)
    return "payload_too_large", (
        f"the request body is larger than the {limit_mb:g} MB upload limit"
    )


def _handle_app_error(exc: AppError):
    response, status = error_response(exc.status, exc.code, exc.message)
    if status == 401:  # RFC 7235: a 401 names the scheme it wants
        response.headers["WWW-Authenticate"] = 'Bearer realm="attendance"'
    return response, status


def _handle_http_error(exc: HTTPException):
    status = exc.code or 500
    if status == 413:
        code, message = _too_large(exc)
    else:
        code = _HTTP_CODES.get(status) or exc.name.lower().replace(" ", "_").replace("'", "")
        message = _http_message(exc)
    body, _ = error_response(status, code, message)
    # Keep werkzeug's headers (Allow on 405) but not its HTML body.
    response = exc.get_response()
    response.set_data(body.get_data())
    response.content_type = "application/json"
    return response


def _handle_unavailable(exc: Exception):
    log.warning("backing service unavailable: %s: %s", type(exc).__name__, exc)
    return error_response(
        503, "service_unavailable", "the job queue (Redis) is unavailable; try again later"
    )


def _handle_os_error(exc: OSError):
    # The stores say StorageFull themselves; a full disk met elsewhere (werkzeug spools a large
    # upload to a temporary file while it parses the form) is one too, not a mystery 500.
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        log.warning("no space left on %s %s: %s", request.method, request.path, exc)
        return _handle_app_error(
            StorageFull(
                "storage full: the web server's disk (its temporary files, where uploads are "
                "received) has no space left; nothing was stored. Try again later"
            )
        )
    return _handle_unexpected(exc)


def _handle_unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(AppError, _handle_app_error)
    app.register_error_handler(HTTPException, _handle_http_error)
    for exc_type in UNAVAILABLE_ERRORS:
        app.register_error_handler(exc_type, _handle_unavailable)
    app.register_error_handler(OSError, _handle_os_error)
    app.register_error_handler(Exception, _handle_unexpected)
