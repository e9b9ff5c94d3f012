"""Fuzzing every operation of the OpenAPI document with schemathesis, in process (WSGI).

The app runs on the real Redis (a private database) and real local stores under tmp_path, with
a student and an attendance record in place so the 200 answers are reached too. No worker runs:
queued jobs just wait in Redis, and /readyz answers 503 (documented, and the only 5xx allowed).

Two runs over the same document:
* with the admin token on every request: no 5xx anywhere (but 503 on /readyz), every status
  documented, JSON where JSON is documented, bodies matching their schemas, 4xx for data the
  document says is invalid, auth actually enforced (schemathesis's `ignored_auth` replays
  successful requests without the token and with a wrong one);
* without a token: every protected operation answers 401 in the documented error shape.

Bounded and reproducible: a fixed number of examples per operation, derandomized and seeded,
no example database; the whole module runs in well under 90 s.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections import Counter
from urllib.parse import urlsplit

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.mutations import OperatorKind
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.exceptions import MethodNotAllowed, NotFound

from attendance.config.settings import Settings
from attendance.domain.schemas import AttendanceRecord
from attendance.stores.records import open_records
from attendance.web.app import BLUEPRINTS, create_app
from attendance.web.openapi import build_spec
from tests import redis_db, tokens
from tests.conftest import DEEPFACE_HOME, redis_url_for

pytestmark = [pytest.mark.redis, pytest.mark.integration, pytest.mark.timeout(300)]

# A Redis database no other suite uses (conftest: 14 e2e, 11 cloud, 13 faults/bench, 12 auth,
# 9/10 cloud faults, 15 api errors).
DB = 7
# Fixed: every run sends the same requests. For a deeper local hunt, e.g.
#   FUZZ_MAX_EXAMPLES=500 FUZZ_SEED=1 make test PYTEST_ARGS=tests/integration/test_fuzz_openapi.py
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))
SEED = int(os.environ.get("FUZZ_SEED", "20261125"))
DERANDOMIZE = "FUZZ_SEED" not in os.environ

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=DERANDOMIZE,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)


# schemathesis's default for schema-valid requests, plus 400 on the two uploads: the document
# can only say that photos are binary strings, and the API rightly refuses bytes that are not a
# whole image (schemathesis generates mostly such bytes; the flatmap_case hook adds real ones).
UPLOAD_POSITIVE_STATUSES = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]


def _config(headers: dict[str, str] | None) -> schemathesis.Config:
    data: dict = {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": DERANDOMIZE},
        "operations": [
            {
                "include-operation-id": operation_id,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": UPLOAD_POSITIVE_STATUSES}
                },
            }
            for operation_id in (
                "enrollStudent",
                "addStudentPhotos",
                "recognise",
                # A name pattern cannot exclude the unprintable characters
                # beyond the BMP (ECMA patterns without the u flag see UTF-16
                # code units); validate_name refuses them with 400.
                "renameStudent",
                # Nor can the document say that a consent's date is not in the future, or
                # that a minor's consent is not their own: both are refused with 400.
                "putConsent",
            )
        ]
        + [
            # The document cannot say that from comes before to, nor bound the range's
            # length: such a range is refused with 400 invalid_range.
            {
                "include-operation-id": operation_id,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": UPLOAD_POSITIVE_STATUSES}
                },
            }
            for operation_id in ("studentAttendance", "classAbsences")
        ]
        + [
            # Nor that an account needs a password or an email (or both), nor check an email
            # address as the API does, nor name the identity providers configured (none here):
            # refused with 400.
            {
                "include-operation-id": operation_id,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": UPLOAD_POSITIVE_STATUSES}
                },
            }
            for operation_id in ("createAccount", "changeAccount", "logIn")
        ]
        + [
            # No worker runs here, so the probe rightly answers 503 (documented, with its
            # Readiness body); test_fuzz_with_admin_token checks it is for want of a worker.
            {
                "include-operation-id": "readyz",
                "checks": {
                    "not_a_server_error": {"expected-statuses": ["2xx", "4xx", "503"]},
                    "positive_data_acceptance": {"expected-statuses": ["200", "503"]},
                },
            },
        ],
    }
    if headers:
        data["headers"] = headers
    return schemathesis.Config.from_dict(data)


class _AppUnderTest:
    """The WSGI app schemathesis sends to: the one `fuzz_app` builds once Redis and tmp_path are
    there. (schemathesis.pytest.from_fixture would load the document from a fixture instead,
    but it sets pytest's private Function._nodeid, which pytest 9 no longer has.)"""

    app = None

    def __call__(self, environ, start_response):
        assert self.app is not None, "the fuzz_app fixture did not run"
        return self.app(environ, start_response)


APP = _AppUnderTest()


def _document() -> dict:
    """The document of the app's routes, built before any store exists."""
    routes_only = Flask(__name__, static_folder=None)
    for blueprint in BLUEPRINTS:
        routes_only.register_blueprint(blueprint)
    return build_spec(routes_only, Settings(_env_file=None))


# The document exactly as the app serves it with these settings (test_served_document_is_fuzzed
# checks that); it only depends on the upload limits, which the fixture leaves at their defaults.
DOCUMENT = _document()
# The operations that need no token (their views are @public) say so with an empty security.
PUBLIC_PATHS = {
    path
    for path, operations in DOCUMENT["paths"].items()
    if all(operation.get("security") == [] for operation in operations.values())
}


def _schema(headers: dict[str, str] | None):
    schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config(headers))
    schema.app = APP
    return schema


admin = _schema(tokens.bearer(tokens.ADMIN))
anonymous = _schema(None)
# (operation, status) -> how many answers, printed at the end (pytest -s) to show what was reached.
STATUSES: Counter = Counter()


def _image(fmt: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(out, format=fmt)
    return out.getvalue()


# Schema-valid photos are random bytes, which the API rightly refuses with 400; some positive
# cases carry real (faceless) images instead, and name the seeded class, so the fuzzer also
# reaches the 202 path: stored uploads, a job in Redis, a queued task.
REAL_PHOTOS = [_image("PNG", (64, 48)), _image("JPEG", (80, 60))]


@admin.hook
def flatmap_case(context, case):
    body = case.body
    positive = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    if not (positive and isinstance(body, dict) and isinstance(body.get("photos"), list)):
        return st.just(case)

    def with_real_photos(choice: tuple[int, bool]):
        count, seeded_class = choice
        if not count:
            return case
        new_body = {**body, "photos": REAL_PHOTOS[:count]}
        if seeded_class and case.path == "/api/v1/recognitions":
            new_body["class_id"] = "room-1"
        # A new case with the same (positive) metadata: editing case.body in place would make
        # schemathesis revalidate it, and a body holding bytes never validates, so it would be
        # taken for negative data and its 202 reported as "schema-violating request accepted".
        return case.operation.Case(
            method=case.method,
            path_parameters=case.path_parameters,
            headers=case.headers,
            cookies=case.cookies,
            query=case.query,
            body=new_body,
            media_type=case.media_type,
            multipart_content_types=case.multipart_content_types,
            _meta=case.meta,
        )

    return st.tuples(st.integers(0, 2), st.booleans()).map(with_real_photos)


def _text_field_retyped(mutation) -> bool:
    return (
        mutation.operator == OperatorKind.CHANGE_TYPE
        and mutation.parameter_location == ParameterLocation.BODY
        and mutation.schema_pointer.startswith("/properties/")
        and not mutation.schema_pointer.startswith("/properties/photos")
    )


@admin.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but one that is schemathesis's, not the API's: in a multipart form
    every field travels as text, so a name "became a number" (0.0) arrives as the string "0.0",
    a valid name. (schemathesis allows for this in path and query parameters, not in forms.)"""
    if not isinstance(failure, AcceptedNegativeData) or case.media_type != "multipart/form-data":
        return True
    mutations = getattr(case.meta.phase.data, "mutations", ()) if case.meta else ()
    return not (mutations and all(_text_field_retyped(m) for m in mutations))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    url = redis_url_for(DB)
    redis_db.flush(url)
    app_settings = Settings(
        _env_file=None,
        REDIS_URL=url,
        blob_store_url=f"file://{tmp}/store",
        records_url=f"sqlite:///{tmp}/attendance.db",
        deepface_home=DEEPFACE_HOME,
        api_tokens=tokens.TOKENS_JSON,
        api_tokens_file=tmp / "no-tokens-file.json",
    )
    records = open_records(app_settings.records_url)
    records.upsert_student("ann", "Ann Example", "room-1")
    records.mark_present(
        AttendanceRecord(
            class_id="room-1",
            date=dt.date(2026, 11, 2),
            student_id="ann",
            name="Ann Example",
            first_seen_at=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
            distance=0.2,
        )
    )
    APP.app = create_app(app_settings)
    yield APP.app
    APP.app = None
    print("\nfuzzed answers (operation, status: count):")
    for (label, status), count in sorted(STATUSES.items()):
        print(f"  {label:45} {status}: {count}")
    redis_db.flush(url)


def test_served_document_is_fuzzed(fuzz_app):
    served = fuzz_app.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == DOCUMENT


def _listed(case, status: int) -> bool:
    """Whether the operation lists this status itself. Every operation also has a `default`
    response (so schemathesis's status_code_conformance accepts any status); this is stricter:
    a status the API really answers must be named, with what it means."""
    responses = case.operation.definition.raw["responses"]
    return str(status) in responses or f"{str(status)[0]}XX" in responses


def _same_method(case) -> bool:
    return case.method.upper() == case.operation.method.upper()


def _routed(app, case, response) -> bool:
    """Whether the URL that was sent matches a route (for some method)."""
    path = urlsplit(response.request.url).path
    try:
        app.url_map.bind("localhost").match(path, method=case.method.upper())
    except MethodNotAllowed:
        return True
    except NotFound:
        return False
    return True


@admin.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_admin_token(fuzz_app, case):
    response = case.call_and_validate()
    if case.path == "/readyz" and response.status_code == 503:
        # The one 5xx allowed: not ready for want of a worker, everything else answering.
        checks = response.json()["checks"]
        assert checks.pop("workers") != "ok", checks
        assert set(checks.values()) == {"ok"}, checks
    else:
        assert response.status_code < 500, (case.method, case.path, response.text)
    if _same_method(case):
        assert _listed(case, response.status_code), (
            f"{case.method} {case.path} answered {response.status_code}, which its responses "
            f"do not list: {response.text}"
        )
    STATUSES[(f"{case.method} {case.path}", response.status_code)] += 1


@anonymous.parametrize()
@FUZZ_SETTINGS
def test_fuzz_without_token_is_refused(fuzz_app, case):
    # Whatever schemathesis put in the Authorization header: nothing, "Bearer " or a made-up token.
    response = case.call()
    if not _routed(fuzz_app, case, response):
        # e.g. n=-1 in /annotated/{job_id}/{n}: no route, so no view, nothing to protect.
        expected: tuple[int, ...] = (404,)
    elif case.method.upper() not in (case.operation.method.upper(), "HEAD", "OPTIONS"):
        # A method the route does not have: werkzeug answers 405 before any view (or auth) runs.
        # (Flask answers HEAD and OPTIONS on every route, behind the same authentication.)
        expected = (405,)
    elif case.path == "/api/v1/sessions" and case.method.upper() == "POST":
        # The login itself: a made-up username and password are refused as a failed login.
        expected = (400, 401, 415, 429)
    elif case.path == "/api/v1/docs/{asset}":
        expected = (200, 404)  # a file the page does not have
    elif case.path in PUBLIC_PATHS:
        expected = (200, 503) if case.path == "/readyz" else (200,)
    else:
        expected = (401,)
    assert response.status_code in expected, (case.method, case.path, case.headers, response.text)
    if response.status_code == 401:
        login = case.path == "/api/v1/sessions"
        assert response.json()["error"]["code"] == ("login_failed" if login else "unauthorized")
    if _same_method(case):
        assert _listed(case, response.status_code), (case.method, case.path, response.text)
    case.validate_response(
        response,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
    )
    STATUSES[(f"anonymous {case.method} {case.path}", response.status_code)] += 1


@pytest.mark.parametrize("limit", ["²", "٣", "0", "1001", "-1", "1e3", " 5"])
def test_audit_limit_beyond_ascii_digits_is_a_400(fuzz_app, limit):
    """Found while fuzzing: str.isdigit() holds for "²", which int() then refused: a 500. Every
    limit outside 1-1000 written in ASCII digits is now a 400, as the document says."""
    client = tokens.as_admin(fuzz_app.test_client())
    response = client.get("/api/v1/audit", query_string={"limit": limit})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_limit"
