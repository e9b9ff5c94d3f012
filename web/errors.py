"""Every 4xx/5xx leaves the API as ``{"error": {"code": ..., "message": ...}}``.

That includes werkzeug's own errors (unknown route, wrong method, body over MAX_CONTENT_LENGTH)
and unexpected exceptions, so clients and fuzzers only ever have to parse one error shape.
"""

from __future__ import annotations

import logging

import kombu.exceptions
import redis.exceptions
from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from common.errors import AppError

log = logging.getLogger(__name__)

# What a request sees when Redis (job state and broker) is down or unreachable.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
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
    if exc.code == 405:
        allowed = sorted(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
        return f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}"
    if exc.code == 413:
        limit_mb = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) / (1024 * 1024)
        return f"the request body is larger than the {limit_mb:g} MB upload limit"
    return exc.description or exc.name


def _handle_app_error(exc: AppError):
    response, status = error_response(exc.status, exc.code, exc.message)
    if status == 401:  # RFC 7235: a 401 names the scheme it wants
        response.headers["WWW-Authenticate"] = 'Bearer realm="attendance"'
    return response, status


def _handle_http_error(exc: HTTPException):
    status = exc.code or 500
    code = _HTTP_CODES.get(status) or exc.name.lower().replace(" ", "_").replace("'", "")
    body, _ = error_response(status, code, _http_message(exc))
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


def _handle_unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(AppError, _handle_app_error)
    app.register_error_handler(HTTPException, _handle_http_error)
    for exc_type in UNAVAILABLE_ERRORS:
        app.register_error_handler(exc_type, _handle_unavailable)
    app.register_error_handler(Exception, _handle_unexpected)
