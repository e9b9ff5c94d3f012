"""A small typed client for the attendance API, over requests.

Every failure, whether the API is down, slow, or answers with an error, leaves this module as an
``ApiError`` whose message is meant to be shown to a person as it is. The frontend talks to the
API only: nothing here (or anywhere in frontend/) touches Redis or a store.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from pydantic import BaseModel, ValidationError

from attendance.domain.reports import ClassAbsences, StudentHistory
from attendance.domain.schemas import (
    WHOLE_DAY,
    AttendanceRecord,
    JobView,
    ModelInfo,
    Register,
    RegisterLock,
    RegisterRow,
    Student,
)

# (filename, bytes): how photos are handed to the client.
Photo = tuple[str, bytes]
# An enrollment's consent as the API's form fields (consent_form() makes one).
ConsentForm = dict[str, str]
M = TypeVar("M", bound=BaseModel)

# What a page says when it needs a token and nobody has logged in.
LOGIN_HINT = "Log in with your username and password, or with your school account."

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 60.0
TERMINAL_STATES = ("succeeded", "failed")


class ApiError(Exception):
    """A failed API call, with a message for people and, when the API sent one, its code."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        body: Any = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        # The decoded JSON body of an HTTP error, if it had one.
        self.body = body

    @property
    def unreachable(self) -> bool:
        return self.code == "api_unreachable"

    @property
    def unauthorized(self) -> bool:
        """HTTP 401: no token, or one the API does not know."""
        return self.status == 401

    @property
    def forbidden(self) -> bool:
        """HTTP 403: a valid token whose role (or classes) may not do this."""
        return self.status == 403

    @property
    def student_exists(self) -> bool:
        """HTTP 409 ``student_exists``: enrolling an id that is taken (add photos instead)."""
        return self.status == 409 and self.code == "student_exists"

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def register_finalized(self) -> bool:
        """HTTP 409 ``register_finalized``: the register is signed off; only an admin changes it."""
        return self.status == 409 and self.code == "register_finalized"

    def __str__(self) -> str:
        return self.message


class JobAccepted(BaseModel):
    job_id: str
    status_url: str


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    # Sent as "Authorization: Bearer <token>" on every request; kept out of repr() so that a
    # logged or displayed client never shows it.
    token: str | None = field(default=None, repr=False)
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    session: requests.Session | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    # --- the one place where HTTP turns into values or ApiError ----------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        http = self.session or requests
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = http.request(
                method,
                url,
                headers=headers,
                timeout=(self.connect_timeout, self.read_timeout),
                **kwargs,
            )
        except requests.exceptions.ConnectionError as exc:
            # ConnectTimeout is both a ConnectionError and a Timeout: it means "not reachable".
            raise ApiError(
                f"The API at {self.base_url} is not reachable ({_reason(exc)}). "
                "Is it running? `make run` starts it.",
                code="api_unreachable",
            ) from None
        except requests.exceptions.Timeout:
            raise ApiError(
                f"The API at {self.base_url} did not answer {method} {path} within "
                f"{self.read_timeout:g} s; try again later.",
                code="api_timeout",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ApiError(
                f"Could not call the API at {url}: {_reason(exc)}", code="api_request_failed"
            ) from None
        if response.status_code >= 400:
            raise _auth_error(_error_from(response), has_token=bool(self.token))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"The API answered {method} {path} with something that is not JSON "
                f"(HTTP {response.status_code}, {response.headers.get('Content-Type', 'no type')})",
                code="bad_response",
                status=response.status_code,
            ) from None

    # --- endpoints -------------------------------------------------------------------------------

    def health(self) -> bool:
        self._json("GET", "/healthz")
        return True

    def readiness(self) -> dict:
        """GET /readyz: answered with 503 when not ready, which is not an error here."""
        try:
            return self._json("GET", "/readyz")
        except ApiError as exc:
            if exc.status == 503 and isinstance(exc.body, dict) and "checks" in exc.body:
                return exc.body
            raise

    def log_in(self, username: str, password: str) -> dict:
        """POST /api/v1/sessions: {"token", "expires_at", "account"}; a refusal raises with
        the API's own words (wrong username or password, too many tries)."""
        body = {"username": username, "password": password}
        data = self._json("POST", "/api/v1/sessions", json=body)
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise ApiError("The API's answer to the login has no token", code="bad_response")
        return data

    def log_in_with_identity(self, provider: str, id_token: str) -> dict:
        """POST /api/v1/sessions with the ID token of the school's identity provider; the same
        answer as log_in."""
        body = {"provider": provider, "id_token": id_token}
        data = self._json("POST", "/api/v1/sessions", json=body)
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise ApiError("The API's answer to the login has no token", code="bad_response")
        return data

    def whoami(self) -> dict:
        """GET /api/v1/sessions/current: the name, role and classes the token carries."""
        data = self._json("GET", "/api/v1/sessions/current")
        if not isinstance(data, dict) or not isinstance(data.get("role"), str):
            raise ApiError("The API's answer about the login is not one", code="bad_response")
        return data

    def log_out(self) -> None:
        self._request("DELETE", "/api/v1/sessions/current")

    def accounts(self) -> list[dict]:
        """GET /api/v1/accounts (admin): every account, never a password's hash."""
        data = self._json("GET", "/api/v1/accounts")
        accounts = data.get("accounts") if isinstance(data, dict) else None
        if not isinstance(accounts, list):
            raise ApiError("The API's list of accounts is not one", code="bad_response")
        return accounts

    def create_account(
        self,
        username: str,
        password: str | None,
        role: str,
        classes: list[str] | None,
        email: str | None = None,
    ) -> dict:
        """POST /api/v1/accounts: a password, an email (for the identity provider), or both."""
        body = {"username": username, "role": role, "classes": classes}
        body |= {k: v for k, v in (("password", password), ("email", email)) if v is not None}
        return self._json("POST", "/api/v1/accounts", json=body)

    def change_account(self, username: str, **change: Any) -> dict:
        """PATCH /api/v1/accounts/<username>: role, classes, all_classes, disabled, password,
        email ("" removes it)."""
        return self._json(
            "PATCH", f"/api/v1/accounts/{urllib.parse.quote(username, safe='')}", json=change
        )

    def model(self) -> ModelInfo:
        return parse(ModelInfo, self._json("GET", "/api/v1/model"), "model information")

    def students(self, class_id: str | None = None) -> list[Student]:
        params = {"class_id": class_id} if class_id else None
        data = self._json("GET", "/api/v1/students", params=params)
        return [parse(Student, s, "a student") for s in _list(data, "students")]

    def attendance(
        self,
        *,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
    ) -> list[AttendanceRecord]:
        data = self._json(
            "GET",
            "/api/v1/attendance",
            params=_attendance_query(class_id, date_from, date_to, student_id),
        )
        return [parse(AttendanceRecord, r, "an attendance record") for r in _list(data, "records")]

    def attendance_csv(
        self,
        *,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
    ) -> bytes:
        """The API's CSV export of the same records: noted in the audit log, and refused (403)
        to a viewer token, as every export is."""
        params = _attendance_query(class_id, date_from, date_to, student_id)
        return self._request(
            "GET", "/api/v1/attendance", params={**params, "format": "csv"}
        ).content

    def student(self, student_id: str) -> Student:
        """GET /api/v1/students/<id>; 404 ``student_not_found`` when there is none."""
        return parse(Student, self._json("GET", _student_path(student_id)), "a student")

    def enroll(
        self,
        student_id: str,
        name: str,
        class_id: str | None,
        photos: Sequence[Photo],
        consent: ConsentForm | None = None,
    ) -> JobAccepted:
        """A new student (POST /api/v1/students) with their consent (consent_form()'s fields;
        without it one recorded before must be on record, else 409 ``consent_required``). An
        id that is taken is refused with 409 ``student_exists`` (ApiError.student_exists):
        add_photos() is the way to add to them."""
        form = {"student_id": student_id, "name": name, **(consent or {})}
        if class_id:
            form["class_id"] = class_id
        data = self._json("POST", "/api/v1/students", data=form, files=_files(photos))
        return parse(JobAccepted, data, "a job")

    def add_photos(
        self,
        student_id: str,
        photos: Sequence[Photo],
        class_id: str | None = None,
        consent: ConsentForm | None = None,
    ) -> JobAccepted:
        """More photos (1-20 a request) of an enrolled student, and optionally a class for them
        (POST /api/v1/students/<id>/photos): a job like an enrollment's; 404
        ``student_not_found`` when there is no such student, 409 ``consent_required`` when no
        consent is on record and ``consent`` gives none."""
        form = {"class_id": class_id} if class_id else {}
        form.update(consent or {})
        data = self._json(
            "POST", f"{_student_path(student_id)}/photos", data=form, files=_files(photos)
        )
        return parse(JobAccepted, data, "a job")

    def add_to_roster(self, student_id: str, name: str, class_id: str) -> Student:
        """POST /api/v1/students with a JSON body: the student on the roster at once, without
        photos (marked by hand); 409 ``student_exists`` if the id is another student's."""
        data = self._json(
            "POST",
            "/api/v1/students",
            json={"student_id": student_id, "name": name, "class_id": class_id},
        )
        return parse(Student, data, "a student")

    def put_consent(self, student_id: str, consent: ConsentForm) -> Student:
        """PUT /api/v1/students/<id>/consent: record consent_form()'s consent."""
        body: dict[str, Any] = dict(consent)
        body["minor"] = consent.get("minor", "true") == "true"
        data = self._json("PUT", f"{_student_path(student_id)}/consent", json=body)
        return parse(Student, data, "a student")

    def withdraw_consent(self, student_id: str) -> dict:
        """DELETE /api/v1/students/<id>/consent (admin): the withdrawal, and the face data it
        erased ({"embeddings_removed", "photos_removed", ...})."""
        data = self._json("DELETE", f"{_student_path(student_id)}/consent")
        if not isinstance(data, dict):
            raise ApiError("The API answered a withdrawal with something unexpected.")
        return data

    def rename(self, student_id: str, name: str) -> Student:
        """PATCH /api/v1/students/<id> with ``{"name": ...}``: the student as renamed."""
        data = self._json("PATCH", _student_path(student_id), json={"name": name})
        return parse(Student, data, "a student")

    def recognise(
        self, class_id: str, date: dt.date, photos: Sequence[Photo], period: str = WHOLE_DAY
    ) -> JobAccepted:
        """Queue a recognition of the photos for the register of (class, date, period); the
        period "" is the whole day."""
        form = {"class_id": class_id, "date": date.isoformat()}
        if period:
            form["period"] = period
        data = self._json("POST", "/api/v1/recognitions", data=form, files=_files(photos))
        return parse(JobAccepted, data, "a job")

    # --- the register ------------------------------------------------------------------------------

    def register(self, class_id: str, date: dt.date, period: str = WHOLE_DAY) -> Register:
        """GET the register of (class, date, period): one row per student of the class."""
        data = self._json("GET", _register_path(class_id, date), params={"period": period})
        return parse(Register, data, "a register")

    def register_export(
        self, class_id: str, date: dt.date, period: str = WHOLE_DAY, fmt: str = "csv"
    ) -> bytes:
        """The whole register as ``csv`` or ``xlsx``: noted in the audit log, and refused (403)
        to a viewer token."""
        params = {"period": period, "format": fmt}
        return self._request("GET", _register_path(class_id, date), params=params).content

    def mark(
        self,
        class_id: str,
        date: dt.date,
        student_id: str,
        status: str,
        period: str = WHOLE_DAY,
        note: str | None = None,
    ) -> RegisterRow:
        """A mark by hand (PUT); the register row after it. A signed-off register refuses a
        teacher with 409 ``register_finalized`` (ApiError.register_finalized)."""
        path = f"{_register_path(class_id, date)}/{urllib.parse.quote(student_id, safe='')}"
        body: dict[str, Any] = {"status": status, "period": period}
        if note:
            body["note"] = note
        data = self._json("PUT", path, json=body)
        after = data.get("after") if isinstance(data, dict) else None
        return parse(RegisterRow, after, "a register row")

    def finalize(self, class_id: str, date: dt.date, period: str = WHOLE_DAY) -> RegisterLock:
        """Sign the register off (POST .../finalize); signing it off again returns the lock."""
        data = self._json(
            "POST", f"{_register_path(class_id, date)}/finalize", json={"period": period}
        )
        return parse(RegisterLock, data, "a register's sign-off")

    def face_image(self, job_id: str, photo: int, face: int) -> bytes:
        """A JPEG crop of face ``face`` of photo ``photo`` of a recognition job."""
        return self._request(
            "GET", f"/api/v1/jobs/{job_id}/photos/{photo}/faces/{face}/image"
        ).content

    def assign_face(
        self, job_id: str, photo: int, face: int, student_id: str | None, learn: bool = False
    ) -> dict:
        """Say who a face of a recognition job is (``student_id``), or that it is nobody of the
        class (None); ``learn`` adds it to that student's photos. The API's answer: ``row``
        (the register row it changed, or None), ``face``, ``learn_job_id``."""
        data = self._json(
            "POST",
            f"/api/v1/jobs/{job_id}/photos/{photo}/faces/{face}/assign",
            json={"student_id": student_id, "learn": learn},
        )
        if not isinstance(data, dict):
            raise ApiError(
                "The API's answer to an assignment is not an object", code="bad_response"
            )
        return data

    # --- reports over a range of dates -------------------------------------------------------------

    def class_absences(
        self, class_id: str, date_from: dt.date, date_to: dt.date, fmt: str = "json"
    ) -> ClassAbsences | bytes:
        """Each student of the class over the range: sessions, attended, absent, late, excused,
        rate, and the sessions missed; ``fmt`` csv or xlsx: the export (audited) as bytes."""
        path = f"/api/v1/classes/{urllib.parse.quote(class_id, safe='')}/absences"
        return self._report(ClassAbsences, path, date_from, date_to, fmt, "a class's absences")

    def student_history(
        self, student_id: str, date_from: dt.date, date_to: dt.date, fmt: str = "json"
    ) -> StudentHistory | bytes:
        """One student's sessions over the range, each with their status; csv or xlsx as for
        class_absences."""
        path = f"{_student_path(student_id)}/attendance"
        return self._report(StudentHistory, path, date_from, date_to, fmt, "a student's history")

    def _report(
        self, model: type[M], path: str, date_from: dt.date, date_to: dt.date, fmt: str, what: str
    ) -> M | bytes:
        params = {"from": date_from.isoformat(), "to": date_to.isoformat()}
        if fmt != "json":
            return self._request("GET", path, params={**params, "format": fmt}).content
        return parse(model, self._json("GET", path, params=params), what)

    def job(self, job_id: str) -> JobView:
        return parse(JobView, self._json("GET", f"/api/v1/jobs/{job_id}"), "a job")

    def annotated(self, job_id: str, n: int) -> bytes:
        return self._request("GET", f"/api/v1/annotated/{job_id}/{n}").content

    def wait_for_job(
        self,
        job_id: str,
        *,
        on_progress: Callable[[JobView], None] | None = None,
        timeout: float = 600,
        interval: float = 0.5,
    ) -> JobView:
        """Poll until the job has succeeded or failed; ``on_progress`` sees every poll."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.state in TERMINAL_STATES:
                return job
            if time.monotonic() > deadline:
                raise ApiError(
                    f"Job {job_id} is still {job.state} after {timeout:g} s "
                    f"({job.progress.done}/{job.progress.total} photos); is a worker running?",
                    code="job_timeout",
                )
            time.sleep(interval)


def _attendance_query(
    class_id: str | None, date_from: dt.date | None, date_to: dt.date | None, student_id: str | None
) -> dict[str, str]:
    params = {
        "class_id": class_id,
        "from": date_from.isoformat() if date_from else None,
        "to": date_to.isoformat() if date_to else None,
        "student_id": student_id,
    }
    return {k: v for k, v in params.items() if v}


def parse(model: type[M], data: Any, what: str) -> M:
    """``data`` as ``model``; fields this app does not know (a newer API) are ignored, at any
    depth, rather than refused as attendance.domain.schemas' strict models otherwise would."""
    try:
        return model.model_validate(data, extra="ignore")
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        reason = errors[0]["msg"] if errors else str(exc)
        raise ApiError(
            f"The API sent {what} this app does not understand: "
            f"{where + ': ' if where else ''}{reason}",
            code="bad_response",
        ) from None


def _register_path(class_id: str, date: dt.date) -> str:
    return f"/api/v1/attendance/{urllib.parse.quote(class_id, safe='')}/{date.isoformat()}"


def _student_path(student_id: str) -> str:
    return f"/api/v1/students/{urllib.parse.quote(student_id, safe='')}"


def _files(photos: Sequence[Photo]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("photos", (name, data)) for name, data in photos]


def consent_form(given_by: str, relationship: str, given_on: dt.date, minor: bool) -> ConsentForm:
    """Consent as an enrollment's form fields (the API checks it: a minor's consent comes from
    a parent or guardian, and the date is not in the future)."""
    return {
        "consent_given_by": given_by,
        "consent_relationship": relationship,
        "consent_given_on": given_on.isoformat(),
        "minor": "true" if minor else "false",
    }


def _list(data: Any, key: str) -> list:
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ApiError(f"The API's answer has no list of {key}", code="bad_response")
    return data[key]


def _reason(exc: Exception) -> str:
    """The innermost cause, without urllib3's pool and object reprs."""
    inner: BaseException = exc
    while inner.__context__ is not None or inner.__cause__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    text = str(inner)
    if "Connection refused" in text or isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if "timed out" in text.lower():
        return "timed out"
    # "<urllib3...object at 0x...>: Failed to establish a new connection: [Errno 113] ..."
    return text.split(": ", 1)[-1][:200] or type(inner).__name__


def _auth_error(exc: ApiError, *, has_token: bool) -> ApiError:
    """401 and 403 as people read them: log in, or this token may not do that. The API's own
    message is kept (it says which role a route needs, or which class is off limits)."""
    if exc.code in ("login_failed", "too_many_logins"):
        return exc  # the login's own answer says what to do
    if exc.status == 401:
        if not has_token:
            return ApiError(
                f"Not logged in: the API needs a token. {LOGIN_HINT}",
                code="unauthorized",
                status=401,
                body=exc.body,
            )
        return ApiError(
            f"The API token is not valid ({_sentence(exc.message)}). Log in again with a valid "
            "token in the sidebar.",
            code="unauthorized",
            status=401,
            body=exc.body,
        )
    if exc.status == 403:
        if exc.code == "class_forbidden":
            lead = "Your token is limited to other classes"
        else:
            lead = "Your token's role may not do this"
        return ApiError(
            f"{lead}: {_sentence(exc.message)}. Log in with another token in the "
            "sidebar if you need to.",
            code=exc.code or "forbidden",
            status=403,
            body=exc.body,
        )
    return exc


def _sentence(text: str) -> str:
    return text.strip().rstrip(".")


def _error_from(response: requests.Response) -> ApiError:
    """The API's ``{"error": {"code", "message"}}``, or a short description of anything else."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        pass
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return ApiError(
            error["message"],
            code=str(error.get("code") or "error"),
            status=response.status_code,
            body=body,
        )
    if isinstance(body, dict) and "checks" in body:  # /readyz's 503
        return ApiError(
            f"The API is not ready: {body['checks']}",
            code="not_ready",
            status=response.status_code,
            body=body,
        )
    text = " ".join(response.text.split())[:200]
    return ApiError(
        f"The API answered HTTP {response.status_code} {response.reason or ''}".rstrip()
        + (f": {text}" if text else ""),
        code=f"http_{response.status_code}",
        status=response.status_code,
        body=body,
    )
