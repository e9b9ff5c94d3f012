"""Records store on DynamoDB: ``dynamodb://<prefix>?region=<region>&endpoint_url=<url>``.

Five tables, each shaped for the queries the API serves (docs/deploy.md has the same in prose):

``<prefix>-students``       HASH student_id. name, created_at, class_ids (string set).
``<prefix>-class-members``  HASH class_id, RANGE student_id: a class's roster is one Query.
``<prefix>-attendance``     HASH class_id, RANGE date_student ("2026-01-05#ann" for the whole
                            day's register, "2026-01-05#ann#P3 maths" for a period's): one
                            class on one date or over a date range is one Query on the key. GSI
                            ``by_student`` (HASH student_id, RANGE date, all attributes): one
                            student's history over a date range is one Query. It also holds
                            the registers' sign-offs and the sightings on signed-off registers,
                            under class keys of their own (see _LOCKS and _SIGHTINGS).
``<prefix>-gallery``        HASH scope ("global"): version, manifest_key, updated_at.
``<prefix>-audit``          HASH log ("audit"), RANGE at_id ("<ISO time>#<uuid>"): the audit log,
                            newest first is one Query in reverse.
``<prefix>-erasures``       HASH student_id. erased_at: the tombstones of erased students.

Accounts are attendance items too, under the class key ``#accounts`` and the sort key the
username: ``account`` holds the account as JSON; listing them is one Query.

Consent records are attendance items too, under the class key ``#consent#<student_id>`` and the
sort key ``consent`` (see _CONSENTS): consent_of (the student id), given_by, relationship,
given_on, minor (boolean), recorded_by, recorded_at, and withdrawn_at and withdrawn_by once
withdrawn.

An attendance item also holds ``job_ids`` (string set): every recognition job that saw the
student for that class, date and period, so that an erasure finds all their photos. Items
written before registers had periods and manual marks lack ``period``, ``status`` and
``source``: they are the whole day's register, present, marked by a face.
A face's mark (and a teacher's from a face) names its face: ``photo`` and ``face`` (numbers),
``box`` (a map of x, y, w, h) and ``captured_at``; items written before have none of them.
A mark a teacher set has ``rev`` (number), moved by each set_mark, which writes only if the
item is still the one it read.

Every Query and Scan follows LastEvaluatedKey. Attendance is written with
``attribute_not_exists`` so a repeat is a no-op; a write guarded against erasure is one
TransactWriteItems with a ConditionCheck on the student's tombstone; the gallery pointer moves only with a
ConditionExpression on the version it was read at (compare-and-set), which is what
GalleryRepository.commit retries on. Reads of the base tables are strongly consistent; the GSI
is eventually consistent (a record shows in a student's history within about a second).

Throttling, 5xx and network errors are retried by botocore (``cloud_max_attempts``,
``aws_retry_mode``); what still fails becomes StoreBusy (transient) or StoreUnavailable (a
missing table, refused credentials), naming the table.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore import exceptions as bexc
from botocore.config import Config

from attendance.domain.accounts import Account
from attendance.domain.errors import (
    MarkChanged,
    RegisterFinalized,
    StoreBusy,
    StoreUnavailable,
    StudentErased,
)
from attendance.domain.schemas import (
    AttendanceRecord,
    AuditEntry,
    Consent,
    RegisterLock,
    Student,
)
from attendance.stores.records.base import (
    Expected,
    GalleryPointer,
    changed_message,
    erased_message,
    stamp,
    utc_now_iso,
)

log = logging.getLogger(__name__)

GALLERY_SCOPE = "global"
# readyz's write probe: one fixed item of the gallery table, overwritten each time; no scope
# the gallery uses starts with '#'.
PROBE_SCOPE = "#readyz"
STUDENT_INDEX = "by_student"
# Above any "#<student_id>[#<period>]" suffix: student ids are [A-Za-z0-9._-], periods
# [A-Za-z0-9 ._-], and '$' sorts after '#'.
_DATE_END = "$"
# Registers' sign-offs live in the attendance table, not a table of their own, so that a
# deployment whose tables were made by hand needs no new one. Their class key starts with '#',
# which no class id can (STUDENT_ID_RE), so a class's Query never meets them; they have no
# student_id, so the by_student index never holds them; a Scan skips them (_is_mark).
_LOCKS = "#lock#"
# Where a recognition notes its job when a signed-off register took no mark for the student:
# items in the by_student index (so attendance_jobs and delete_attendance find them) that are
# not marks.
_SIGHTINGS = "#seen#"
# Consent records live in the attendance table too, for the same reason: one item per student
# under the class key "#consent#<student_id>" and the sort key "consent". The student's id is
# kept as ``consent_of``, not student_id, so the by_student index never holds them.
_CONSENTS = "#consent#"
# How often set_mark reads again when another write changed the mark between its read and its
# write.
_SET_MARK_ATTEMPTS = 5


def _mark_key(class_id: str, day: str, period: str, student_id: str) -> dict:
    """The whole day's key is the one every item had before periods, so those items are the
    whole day's register as they are. Neither ids nor periods contain '#', so the parts split
    back one way only, and "<day>#<student>" never equals any "<day>#<student>#<period>"."""
    sort_key = f"{day}#{student_id}" if period == "" else f"{day}#{student_id}#{period}"
    return {"class_id": _s(class_id), "date_student": _s(sort_key)}


def _lock_key(class_id: str, day: str, period: str) -> dict:
    return {"class_id": _s(f"{_LOCKS}{class_id}"), "date_student": _s(f"{day}#{period}")}


_ACCOUNTS = "#accounts"


def _account_key(username: str) -> dict:
    return {"class_id": _s(_ACCOUNTS), "date_student": _s(username)}


def _consent_key(student_id: str) -> dict:
    return {"class_id": _s(f"{_CONSENTS}{student_id}"), "date_student": _s("consent")}


def _consent_item(consent: Consent) -> dict:
    item = {
        **_consent_key(consent.student_id),
        "consent_of": _s(consent.student_id),
        "given_by": _s(consent.given_by),
        "relationship": _s(consent.relationship),
        "given_on": _s(consent.given_on.isoformat()),
        "minor": {"BOOL": consent.minor},
        "recorded_by": _s(consent.recorded_by),
        "recorded_at": _s(consent.recorded_at.isoformat()),
    }
    if consent.withdrawn_at is not None:
        item["withdrawn_at"] = _s(consent.withdrawn_at.isoformat())
    if consent.withdrawn_by is not None:
        item["withdrawn_by"] = _s(consent.withdrawn_by)
    return item


def _consent(item: dict) -> Consent:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return Consent(
        student_id=item["consent_of"]["S"],
        given_by=item["given_by"]["S"],
        relationship=item["relationship"]["S"],
        given_on=item["given_on"]["S"],
        minor=item["minor"]["BOOL"],
        recorded_by=item["recorded_by"]["S"],
        recorded_at=item["recorded_at"]["S"],
        withdrawn_at=text("withdrawn_at"),
        withdrawn_by=text("withdrawn_by"),
    )


def _is_mark(item: dict) -> bool:
    return not item["class_id"]["S"].startswith("#")


def _conflicted(exc: BaseException) -> bool:
    """Whether a StoreBusy came of a transaction cancelled by another one on the same items."""
    cause = exc.__cause__
    return isinstance(cause, bexc.ClientError) and any(
        reason.get("Code") == "TransactionConflict"
        for reason in cause.response.get("CancellationReasons") or []
    )


def _finalized_message(class_id: str, day: str, period: str) -> str:
    return f"the register of {class_id} on {day}{f' ({period})' if period else ''} is finalized"


_DENIED = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDenied",
}
_BUSY = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "LimitExceededException",
    "TransactionInProgressException",
}
_UNREACHABLE = (
    bexc.EndpointConnectionError,
    bexc.ConnectTimeoutError,
    bexc.ReadTimeoutError,
    bexc.ConnectionClosedError,
    bexc.ConnectionError,
    bexc.HTTPClientError,
)


def _s(value: str) -> dict:
    return {"S": value}


class DynamoRecords:
    def __init__(
        self,
        table_prefix: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        create_tables: bool = True,
        max_attempts: int = 5,
        retry_mode: str = "standard",
        timeout: float = 30.0,
        ping_timeout: float = 2.0,
        page_size: int | None = None,
    ):
        self.prefix = table_prefix
        self.students_table = f"{table_prefix}-students"
        self.members_table = f"{table_prefix}-class-members"
        self.attendance_table = f"{table_prefix}-attendance"
        self.gallery_table = f"{table_prefix}-gallery"
        self.audit_table = f"{table_prefix}-audit"
        self.erasures_table = f"{table_prefix}-erasures"
        self.region = region
        self.endpoint_url = endpoint_url
        self.create_tables = create_tables
        self.page_size = page_size
        self._config = Config(
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            connect_timeout=min(timeout, 10.0),
            read_timeout=timeout,
            tcp_keepalive=True,
        )
        # readyz: one try, short timeouts.
        self._ping_config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=ping_timeout,
            read_timeout=ping_timeout,
        )
        self._lock = threading.RLock()
        self._client_obj = None
        self._ping_client_obj = None
        self._ready = False

    @property
    def tables(self) -> tuple[str, ...]:
        return (
            self.students_table,
            self.members_table,
            self.attendance_table,
            self.gallery_table,
            self.audit_table,
            self.erasures_table,
        )

    # --- clients and errors --------------------------------------------------------------------

    def _where(self, table: str | None) -> str:
        place = f"DynamoDB table {table!r}" if table else f"DynamoDB tables {self.prefix}-*"
        if self.region:
            place += f" in {self.region}"
        if self.endpoint_url:
            place += f" at {self.endpoint_url}"
        return place

    def _make_client(self, config: Config):
        session = boto3.session.Session()
        kwargs: dict[str, Any] = {"config": config}
        if self.region:
            kwargs["region_name"] = self.region
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
            # A local stand-in (moto, dynamodb-local) takes any credentials; do not make
            # people invent some.
            if session.get_credentials() is None:
                kwargs["aws_access_key_id"] = "local"
                kwargs["aws_secret_access_key"] = "local"
            kwargs.setdefault("region_name", session.region_name or "us-east-1")
        return session.client("dynamodb", **kwargs)

    def _client(self, ping: bool = False):
        attr = "_ping_client_obj" if ping else "_client_obj"
        if getattr(self, attr) is None:
            with self._lock:
                if getattr(self, attr) is None:
                    with self._errors(None):
                        setattr(
                            self,
                            attr,
                            self._make_client(self._ping_config if ping else self._config),
                        )
        return getattr(self, attr)

    def translate(self, exc: BaseException, table: str | None) -> BaseException:
        where = self._where(table)
        if isinstance(exc, bexc.ClientError):
            err = exc.response.get("Error", {})
            code, message = err.get("Code", ""), err.get("Message", "")
            if code == "ResourceNotFoundException":
                hint = (
                    "" if self.create_tables else " (or set ATTENDANCE_DYNAMODB_CREATE_TABLES=true)"
                )
                return StoreUnavailable(
                    f"{where} does not exist; create it as docs/deploy.md describes{hint}"
                )
            if code in _DENIED:
                return StoreUnavailable(
                    f"access to {where} was refused ({code}: {message}); check the AWS "
                    "credentials and that the role has the permissions docs/deploy.md lists"
                )
            if (
                code in _BUSY
                or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
            ):
                return StoreBusy(f"{where} is throttling or failing ({code}: {message})")
            return exc
        if isinstance(exc, (bexc.NoCredentialsError, bexc.PartialCredentialsError)):
            return StoreUnavailable(
                f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE or run with a role"
            )
        if isinstance(exc, bexc.NoRegionError):
            return StoreUnavailable(
                f"no AWS region for {where}: add ?region=... to records_url or set AWS_REGION"
            )
        if isinstance(exc, _UNREACHABLE):
            return StoreBusy(f"{where} cannot be reached: {type(exc).__name__}: {exc}"[:500])
        return exc

    @contextmanager
    def _errors(self, table: str | None) -> Iterator[None]:
        try:
            yield
        except StoreUnavailable:
            raise
        except Exception as exc:
            mapped = self.translate(exc, table)
            if mapped is exc:
                raise
            raise mapped from exc

    def _call(self, table: str, operation: str, **kwargs) -> dict:
        self._ensure_tables()
        with self._errors(table):
            return getattr(self._client(), operation)(TableName=table, **kwargs)

    def _conditional(self, table: str, operation: str, **kwargs) -> bool:
        """A write with a ConditionExpression: False, having changed nothing, if it failed."""
        try:
            self._call(table, operation, **kwargs)
        except bexc.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _pages(self, table: str, operation: str, **kwargs) -> Iterator[dict]:
        """Every item of a Query or Scan, following LastEvaluatedKey."""
        if self.page_size:
            kwargs["Limit"] = self.page_size
        while True:
            page = self._call(table, operation, **kwargs)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # --- tables --------------------------------------------------------------------------------

    def _definitions(self) -> dict[str, dict]:
        def attrs(*names: str) -> list[dict]:
            return [{"AttributeName": n, "AttributeType": "S"} for n in names]

        def key(hash_key: str, range_key: str | None = None) -> list[dict]:
            schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
            if range_key:
                schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
            return schema

        return {
            self.students_table: {
                "AttributeDefinitions": attrs("student_id"),
                "KeySchema": key("student_id"),
            },
            self.members_table: {
                "AttributeDefinitions": attrs("class_id", "student_id"),
                "KeySchema": key("class_id", "student_id"),
            },
            self.attendance_table: {
                "AttributeDefinitions": attrs("class_id", "date_student", "student_id", "date"),
                "KeySchema": key("class_id", "date_student"),
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": STUDENT_INDEX,
                        "KeySchema": key("student_id", "date"),
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            },
            self.gallery_table: {
                "AttributeDefinitions": attrs("scope"),
                "KeySchema": key("scope"),
            },
            self.audit_table: {
                "AttributeDefinitions": attrs("log", "at_id"),
                "KeySchema": key("log", "at_id"),
            },
            self.erasures_table: {
                "AttributeDefinitions": attrs("student_id"),
                "KeySchema": key("student_id"),
            },
        }

    def _describe(self, client, table: str) -> dict | None:
        try:
            return client.describe_table(TableName=table)["Table"]
        except bexc.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise

    def _check_tables(self, client, create: bool, wait: bool) -> None:
        for table, definition in self._definitions().items():
            with self._errors(table):
                desc = self._describe(client, table)
                if desc is None:
                    if not create:
                        raise self.translate(
                            bexc.ClientError(
                                {"Error": {"Code": "ResourceNotFoundException", "Message": ""}},
                                "DescribeTable",
                            ),
                            table,
                        )
                    try:
                        client.create_table(
                            TableName=table, BillingMode="PAY_PER_REQUEST", **definition
                        )
                        log.info("created DynamoDB table %s", table)
                    except bexc.ClientError as exc:
                        # Another process is creating it at the same moment: just wait.
                        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                            raise
                    desc = self._describe(client, table) or {"TableStatus": "CREATING"}
                if not self._active(desc):
                    if not wait:
                        raise StoreUnavailable(
                            f"{self._where(table)} is {desc.get('TableStatus', 'not ACTIVE')}, "
                            "not ACTIVE yet"
                        )
                    self._wait_active(client, table)

    @staticmethod
    def _active(desc: dict) -> bool:
        return desc.get("TableStatus") == "ACTIVE" and all(
            index.get("IndexStatus") == "ACTIVE" for index in desc.get("GlobalSecondaryIndexes", [])
        )

    def _wait_active(self, client, table: str, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while time.monotonic() < deadline:
            desc = self._describe(client, table)
            if desc is not None and self._active(desc):
                return
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise StoreUnavailable(f"{self._where(table)} did not become ACTIVE in {timeout:g}s")

    def _ensure_tables(self) -> None:
        """Once per process: every table exists and is ACTIVE (created when allowed)."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                self._check_tables(self._client(), create=self.create_tables, wait=True)
                self._ready = True

    def ping(self) -> None:
        """Each table exists and is ACTIVE (with its index), asked once with short timeouts."""
        client = self._client(ping=True)
        try:
            self._check_tables(client, create=self.create_tables and not self._ready, wait=False)
        except StoreBusy as exc:
            raise StoreUnavailable(str(exc)) from exc

    def probe_write(self) -> None:
        """Overwrite the one probe item of the gallery table, asked once with short timeouts."""
        client = self._client(ping=True)
        try:
            with self._errors(self.gallery_table):
                client.put_item(
                    TableName=self.gallery_table,
                    Item={"scope": _s(PROBE_SCOPE), "written_at": _s(utc_now_iso())},
                )
        except StoreBusy as exc:
            raise StoreUnavailable(str(exc)) from exc

    # --- erasure guards -------------------------------------------------------------------------

    def _not_erased(self, student_id: str, since: dt.datetime) -> dict:
        """A transaction item that holds only while the student has no tombstone >= since."""
        return {
            "ConditionCheck": {
                "TableName": self.erasures_table,
                "Key": {"student_id": _s(student_id)},
                "ConditionExpression": "attribute_not_exists(student_id) OR erased_at < :since",
                "ExpressionAttributeValues": {":since": _s(stamp(since))},
            }
        }

    def _transact(self, table: str, items: list[dict]) -> list[str]:
        """Run the transaction; [] if it went through, else each item's cancellation code."""
        self._ensure_tables()
        try:
            with self._errors(table):
                self._client().transact_write_items(TransactItems=items)
        except bexc.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            codes = [r.get("Code", "None") for r in reasons]
            if not codes or any(c not in ("None", "ConditionalCheckFailed") for c in codes):
                # Cancelled for another reason (a conflicting transaction, throttling).
                raise StoreBusy(
                    f"{self._where(table)}: transaction cancelled "
                    f"({', '.join(codes) or 'no reason given'})"
                ) from exc
            return codes
        return []

    # --- students ------------------------------------------------------------------------------

    def upsert_student(
        self,
        student_id: str,
        name: str,
        class_id: str | None,
        *,
        not_erased_since: dt.datetime | None = None,
    ) -> None:
        update: dict[str, Any] = {
            "TableName": self.students_table,
            "Key": {"student_id": _s(student_id)},
            "UpdateExpression": "SET #n = :name, created_at = if_not_exists(created_at, :now)",
            "ExpressionAttributeNames": {"#n": "name"},
            "ExpressionAttributeValues": {":name": _s(name), ":now": _s(utc_now_iso())},
        }
        if class_id is None and not_erased_since is None:
            update.pop("TableName")
            self._call(self.students_table, "update_item", **update)
            return
        # One transaction: the student, the class roster and the tombstone check agree.
        items = []
        if not_erased_since is not None:
            items.append(self._not_erased(student_id, not_erased_since))
        if class_id is not None:
            update["UpdateExpression"] += " ADD class_ids :classes"
            update["ExpressionAttributeValues"][":classes"] = {"SS": [class_id]}
            items.append(
                {
                    "Put": {
                        "TableName": self.members_table,
                        "Item": {"class_id": _s(class_id), "student_id": _s(student_id)},
                    }
                }
            )
        items.append({"Update": update})
        if self._transact(self.students_table, items):
            raise StudentErased(erased_message(student_id))

    def rename_student(self, student_id: str, name: str) -> bool:
        return self._conditional(
            self.students_table,
            "update_item",
            Key={"student_id": _s(student_id)},
            UpdateExpression="SET #n = :name",
            ConditionExpression="attribute_exists(student_id)",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":name": _s(name)},
        )

    @staticmethod
    def _student(item: dict) -> Student:
        return Student(
            student_id=item["student_id"]["S"],
            name=item["name"]["S"],
            class_ids=sorted(item.get("class_ids", {}).get("SS", [])),
        )

    def get_student(self, student_id: str) -> Student | None:
        item = self._call(
            self.students_table, "get_item", Key={"student_id": _s(student_id)}, ConsistentRead=True
        ).get("Item")
        return self._student(item) if item else None

    def list_students(self, class_id: str | None = None) -> list[Student]:
        if class_id is None:
            items = self._pages(self.students_table, "scan", ConsistentRead=True)
            return sorted((self._student(i) for i in items), key=lambda s: s.student_id)
        ids = [
            item["student_id"]["S"]
            for item in self._pages(
                self.members_table,
                "query",
                ConsistentRead=True,
                KeyConditionExpression="class_id = :c",
                ExpressionAttributeValues={":c": _s(class_id)},
            )
        ]
        return sorted(self._batch_get_students(ids), key=lambda s: s.student_id)

    def _batch_get(self, table: str, student_ids: list[str]) -> Iterator[dict]:
        """The items of ``table`` keyed by these student ids (those that exist)."""
        self._ensure_tables()
        for start in range(0, len(student_ids), 100):  # BatchGetItem takes at most 100 keys
            request = {
                table: {
                    "Keys": [{"student_id": _s(sid)} for sid in student_ids[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            delay = 0.05
            while request:
                with self._errors(table):
                    reply = self._client().batch_get_item(RequestItems=request)
                yield from reply["Responses"].get(table, [])
                request = reply.get("UnprocessedKeys") or {}
                if request:  # throttled part of the batch: back off, ask again
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)

    def _batch_get_students(self, ids: list[str]) -> list[Student]:
        return [self._student(item) for item in self._batch_get(self.students_table, ids)]

    def class_exists(self, class_id: str) -> bool:
        reply = self._call(
            self.members_table,
            "query",
            ConsistentRead=True,
            Limit=1,
            KeyConditionExpression="class_id = :c",
            ExpressionAttributeValues={":c": _s(class_id)},
        )
        return bool(reply.get("Items"))

    # --- attendance ----------------------------------------------------------------------------

    def _unlocked(self, class_id: str, day: str, period: str) -> dict:
        """A transaction item that holds only while the register is not signed off."""
        return {
            "ConditionCheck": {
                "TableName": self.attendance_table,
                "Key": _lock_key(class_id, day, period),
                "ConditionExpression": "attribute_not_exists(class_id)",
            }
        }

    @staticmethod
    def _mark_values(record: AttendanceRecord) -> dict[str, dict]:
        """The item's attributes other than its key and job_ids."""
        values = {
            "date": _s(record.date.isoformat()),
            "student_id": _s(record.student_id),
            "name": _s(record.name),
            "first_seen_at": _s(record.first_seen_at.isoformat()),
            "status": _s(record.status),
            "source": _s(record.source),
        }
        if record.period:
            values["period"] = _s(record.period)
        if record.distance is not None:
            values["distance"] = {"N": repr(float(record.distance))}
        if record.job_id is not None:
            values["job_id"] = _s(record.job_id)
        if record.marked_by is not None:
            values["marked_by"] = _s(record.marked_by)
        if record.marked_at is not None:
            values["marked_at"] = _s(record.marked_at.isoformat())
        if record.note is not None:
            values["note"] = _s(record.note)
        if record.photo is not None:
            values["photo"] = {"N": str(record.photo)}
        if record.face is not None:
            values["face"] = {"N": str(record.face)}
        if record.box is not None:
            values["box"] = {"M": {k: {"N": str(v)} for k, v in record.box.model_dump().items()}}
        if record.captured_at is not None:
            values["captured_at"] = _s(record.captured_at.isoformat())
        return values

    def mark_present(
        self, record: AttendanceRecord, *, not_erased_since: dt.datetime | None = None
    ) -> bool:
        day = record.date.isoformat()
        key = _mark_key(record.class_id, day, record.period, record.student_id)
        item = {**key, **self._mark_values(record)}
        if record.job_id is not None:
            item["job_ids"] = {"SS": [record.job_id]}
        put = {
            "TableName": self.attendance_table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(class_id)",
        }
        items = [self._unlocked(record.class_id, day, record.period), {"Put": put}]
        if not_erased_since is not None:
            items.insert(0, self._not_erased(record.student_id, not_erased_since))
        codes = self._transact(self.attendance_table, items)
        if not codes:
            return True
        if not_erased_since is not None and codes[0] == "ConditionalCheckFailed":
            raise StudentErased(erased_message(record.student_id))
        # Marked already, or signed off: note this job among those that saw the student.
        if record.job_id is not None:
            self._note_job(record, key, not_erased_since)
        return False

    def _note_job(
        self, record: AttendanceRecord, key: dict, not_erased_since: dt.datetime | None
    ) -> None:
        assert record.job_id is not None
        if self._conditional(
            self.attendance_table,
            "update_item",
            Key=key,
            UpdateExpression="ADD job_ids :j",
            ConditionExpression="attribute_exists(class_id)",
            ExpressionAttributeValues={":j": {"SS": [record.job_id]}},
        ):
            return
        # No mark to hold it: the register was signed off before this photo was processed.
        sighting = {
            "TableName": self.attendance_table,
            "Key": {**key, "class_id": _s(f"{_SIGHTINGS}{record.class_id}")},
            "UpdateExpression": "SET student_id = :sid, #d = :day ADD job_ids :j",
            "ExpressionAttributeNames": {"#d": "date"},
            "ExpressionAttributeValues": {
                ":sid": _s(record.student_id),
                ":day": _s(record.date.isoformat()),
                ":j": {"SS": [record.job_id]},
            },
        }
        items: list[dict] = [{"Update": sighting}]
        if not_erased_since is not None:
            # Erased since the mark was refused: their erasure has run or is running, and a
            # sighting written now would outlive it.
            items.insert(0, self._not_erased(record.student_id, not_erased_since))
        self._transact(self.attendance_table, items)

    def set_mark(
        self,
        record: AttendanceRecord,
        *,
        correction: bool = False,
        expected: Expected | None = None,
    ) -> AttendanceRecord | None:
        day = record.date.isoformat()
        key = _mark_key(record.class_id, day, record.period, record.student_id)
        values = self._mark_values(record)
        # What the old mark had and this one has not (a face's distance, a note) goes.
        optional = (
            "period",
            "distance",
            "job_id",
            "marked_by",
            "marked_at",
            "note",
            "photo",
            "face",
            "box",
            "captured_at",
        )
        removed = [n for n in optional if n not in values]
        names = {f"#{i}": name for i, name in enumerate((*values, *removed))}
        alias = {name: a for a, name in names.items()}
        assignments = ", ".join(f"{alias[n]} = :{i}" for i, n in enumerate(values))
        names["#rev"] = "rev"
        for attempt in range(_SET_MARK_ATTEMPTS):
            old = self._call(self.attendance_table, "get_item", Key=key, ConsistentRead=True).get(
                "Item"
            )
            # The write below is conditional on this read: what was expected is what it
            # replaces.
            if expected is not None and (self._record(old) if old else None) != expected.mark:
                raise MarkChanged(changed_message(record))
            attr_values = {f":{i}": v for i, v in enumerate(values.values())}
            condition_names: dict[str, str] = {}
            if old is None:
                condition = "attribute_not_exists(#key)"
                condition_names["#key"] = "class_id"
                rev = 0
            else:
                # Unchanged since the read: the same revision. Items no set_mark wrote have
                # none; they are face marks, written once, when first seen.
                rev = int(old["rev"]["N"]) if "rev" in old else 0
                if rev:
                    condition = "#rev = :old_rev"
                    attr_values[":old_rev"] = {"N": str(rev)}
                else:
                    condition = "attribute_exists(#key) AND attribute_not_exists(#rev)"
                    condition += " AND #seen = :old_seen"
                    condition_names.update({"#key": "class_id", "#seen": "first_seen_at"})
                    attr_values[":old_seen"] = old["first_seen_at"]
            attr_values[":rev"] = {"N": str(rev + 1)}
            expression = f"SET #rev = :rev, {assignments}"
            if removed:
                expression += " REMOVE " + ", ".join(alias[n] for n in removed)
            # ADD, not SET: the jobs that saw the student stay (one a face noted between the
            # read and this write too), and the replaced mark's own job joins them.
            jobs = {j for j in (record.job_id, old and old.get("job_id", {}).get("S")) if j}
            if jobs:
                expression += " ADD job_ids :jobs"
                attr_values[":jobs"] = {"SS": sorted(jobs)}
            update = {
                "TableName": self.attendance_table,
                "Key": key,
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {**names, **condition_names},
                "ExpressionAttributeValues": attr_values,
            }
            items: list[dict] = [{"Update": update}]
            if not correction:
                items.insert(0, self._unlocked(record.class_id, day, record.period))
            try:
                codes = self._transact(self.attendance_table, items)
            except StoreBusy as exc:
                # Another transaction on the same item at the same moment: as for a changed
                # mark, read again. Anything else busy is the caller's to retry later.
                if attempt == _SET_MARK_ATTEMPTS - 1 or not _conflicted(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            if not codes:
                return self._record(old) if old is not None else None
            if not correction and codes[0] == "ConditionalCheckFailed":
                raise RegisterFinalized(_finalized_message(record.class_id, day, record.period))
            # Another write moved the mark since the read: read it again.
        raise StoreBusy(
            f"{self._where(self.attendance_table)}: the mark of {record.student_id} kept "
            f"changing; tried {_SET_MARK_ATTEMPTS} times"
        )

    def get_mark(
        self, class_id: str, date: dt.date, period: str, student_id: str
    ) -> AttendanceRecord | None:
        item = self._call(
            self.attendance_table,
            "get_item",
            Key=_mark_key(class_id, date.isoformat(), period, student_id),
            ConsistentRead=True,
        ).get("Item")
        return self._record(item) if item else None

    def finalize_register(
        self, class_id: str, date: dt.date, period: str, by: str, at: dt.datetime
    ) -> RegisterLock:
        key = _lock_key(class_id, date.isoformat(), period)
        # Where the condition fails the register was signed off already: that lock stays.
        self._conditional(
            self.attendance_table,
            "put_item",
            Item={**key, "finalized_by": _s(by), "finalized_at": _s(at.isoformat())},
            ConditionExpression="attribute_not_exists(class_id)",
        )
        lock = self.register_lock(class_id, date, period)
        if lock is None:  # only if it was removed by hand in between
            raise StoreBusy(f"{self._where(self.attendance_table)}: the sign-off did not stay")
        return lock

    def register_lock(self, class_id: str, date: dt.date, period: str) -> RegisterLock | None:
        item = self._call(
            self.attendance_table,
            "get_item",
            Key=_lock_key(class_id, date.isoformat(), period),
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        return RegisterLock(
            class_id=class_id,
            date=date,
            period=period,
            finalized_by=item["finalized_by"]["S"],
            finalized_at=item["finalized_at"]["S"],
        )

    def list_register_locks(
        self, class_id: str, date_from: dt.date, date_to: dt.date
    ) -> list[RegisterLock]:
        if date_from > date_to:
            return []
        locks = []
        for item in self._pages(
            self.attendance_table,
            "query",
            ConsistentRead=True,
            KeyConditionExpression="class_id = :cid AND date_student BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":cid": _s(f"{_LOCKS}{class_id}"),
                ":lo": _s(f"{date_from.isoformat()}#"),
                ":hi": _s(f"{date_to.isoformat()}{_DATE_END}"),
            },
        ):
            day, period = item["date_student"]["S"].split("#", 1)
            locks.append(
                RegisterLock(
                    class_id=class_id,
                    date=day,
                    period=period,
                    finalized_by=item["finalized_by"]["S"],
                    finalized_at=item["finalized_at"]["S"],
                )
            )
        return locks

    def attendance_jobs(self, student_id: str) -> set[str]:
        jobs: set[str] = set()
        for item in self._pages(
            self.attendance_table,
            "query",
            IndexName=STUDENT_INDEX,
            KeyConditionExpression="student_id = :sid",
            ExpressionAttributeValues={":sid": _s(student_id)},
        ):
            jobs.update(item.get("job_ids", {}).get("SS", []))
            if "job_id" in item:
                jobs.add(item["job_id"]["S"])
        return jobs

    @staticmethod
    def _record(item: dict) -> AttendanceRecord:
        def text(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return AttendanceRecord(
            class_id=item["class_id"]["S"],
            date=item["date"]["S"],
            student_id=item["student_id"]["S"],
            name=item["name"]["S"],
            first_seen_at=item["first_seen_at"]["S"],
            distance=float(item["distance"]["N"]) if "distance" in item else None,
            job_id=text("job_id"),
            period=text("period") or "",
            status=text("status") or "present",
            source=text("source") or "face",
            marked_by=text("marked_by"),
            marked_at=text("marked_at"),
            note=text("note"),
            photo=int(item["photo"]["N"]) if "photo" in item else None,
            face=int(item["face"]["N"]) if "face" in item else None,
            box=({k: int(v["N"]) for k, v in item["box"]["M"].items()} if "box" in item else None),
            captured_at=text("captured_at"),
        )

    def list_attendance(
        self,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
        period: str | None = None,
    ) -> list[AttendanceRecord]:
        lo = date_from.isoformat() if date_from else None
        hi = date_to.isoformat() if date_to else None
        if lo and hi and lo > hi:
            return []
        values: dict[str, dict] = {}
        names: dict[str, str] = {}
        filters: list[str] = []
        kwargs: dict[str, Any]
        if student_id is not None:
            # One student's history: the by_student index, keyed by date.
            table, kwargs = self.attendance_table, {"IndexName": STUDENT_INDEX}
            key = "student_id = :sid"
            values[":sid"] = _s(student_id)
            names["#d"] = "date"
            if lo and hi:
                key += " AND #d BETWEEN :lo AND :hi"
            elif lo:
                key += " AND #d >= :lo"
            elif hi:
                key += " AND #d <= :hi"
            if class_id is not None:
                filters.append("class_id = :cid")
                values[":cid"] = _s(class_id)
            operation = "query"
        elif class_id is not None:
            # One class on one date or over a range: the table's own key.
            table, kwargs = self.attendance_table, {"ConsistentRead": True}
            key = "class_id = :cid"
            values[":cid"] = _s(class_id)
            if lo and hi:
                key += " AND date_student BETWEEN :lo AND :hi"
            elif lo:
                key += " AND date_student >= :lo"
            elif hi:
                key += " AND date_student <= :hi"
            operation = "query"
            lo, hi = (f"{lo}#" if lo else None), (f"{hi}{_DATE_END}" if hi else None)
        else:
            # No class and no student: every class's records, a Scan (an export, not a page).
            table, kwargs, key, operation = (
                self.attendance_table,
                {"ConsistentRead": True},
                "",
                "scan",
            )
            names["#d"] = "date"
            if lo:
                filters.append("#d >= :lo")
            if hi:
                filters.append("#d <= :hi")
        if lo and (":lo" in key or ":lo" in " ".join(filters)):
            values[":lo"] = _s(lo)
        if hi and (":hi" in key or ":hi" in " ".join(filters)):
            values[":hi"] = _s(hi)
        if key:
            kwargs["KeyConditionExpression"] = key
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
        used = key + " " + " ".join(filters)
        names = {k: v for k, v in names.items() if k in used}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        records = [
            self._record(item) for item in self._pages(table, operation, **kwargs) if _is_mark(item)
        ]
        # Filtered here: items of the whole day have no period attribute to filter on.
        if period is not None:
            records = [r for r in records if r.period == period]
        return sorted(records, key=lambda r: (r.date, r.class_id, r.period, r.student_id))

    # --- gallery pointer -----------------------------------------------------------------------

    def get_gallery_pointer(self) -> GalleryPointer | None:
        item = self._call(
            self.gallery_table, "get_item", Key={"scope": _s(GALLERY_SCOPE)}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return GalleryPointer(int(item["version"]["N"]), item["manifest_key"]["S"])

    def swap_gallery_pointer(
        self,
        expected_version: int,
        new: GalleryPointer,
        *,
        guard: tuple[str, dt.datetime] | None = None,
    ) -> bool:
        item = {
            "scope": _s(GALLERY_SCOPE),
            "version": {"N": str(new.version)},
            "manifest_key": _s(new.manifest_key),
            "updated_at": _s(utc_now_iso()),
        }
        if expected_version == 0:
            condition = {
                "ConditionExpression": "attribute_not_exists(#s)",
                "ExpressionAttributeNames": {"#s": "scope"},
            }
        else:
            condition = {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
            }
        if guard is not None:
            codes = self._transact(
                self.gallery_table,
                [
                    self._not_erased(*guard),
                    {"Put": {"TableName": self.gallery_table, "Item": item, **condition}},
                ],
            )
            if codes and codes[0] == "ConditionalCheckFailed":
                raise StudentErased(erased_message(guard[0]))
            return not codes
        return self._conditional(self.gallery_table, "put_item", Item=item, **condition)

    # --- erasure and audit ---------------------------------------------------------------------

    def delete_student(self, student_id: str) -> bool:
        student = self.get_student(student_id)
        if student is None:
            return False
        items = [
            {"Delete": {"TableName": self.students_table, "Key": {"student_id": _s(student_id)}}}
        ]
        items += [
            {
                "Delete": {
                    "TableName": self.members_table,
                    "Key": {"class_id": _s(c), "student_id": _s(student_id)},
                }
            }
            for c in student.class_ids
        ]
        # TransactWriteItems takes at most 100 items: the student row goes in the last batch,
        # so a failure part-way leaves the student listed and a retry finishes the job.
        batches = [items[i : i + 99] for i in range(1, len(items), 99)] or [[]]
        batches[-1].append(items[0])
        for batch in batches:
            with self._errors(self.students_table):
                self._client().transact_write_items(TransactItems=batch)
        return True

    def delete_attendance(self, student_id: str) -> int:
        items = list(
            self._pages(
                self.attendance_table,
                "query",
                IndexName=STUDENT_INDEX,
                KeyConditionExpression="student_id = :sid",
                ExpressionAttributeValues={":sid": _s(student_id)},
            )
        )
        for item in items:
            key = {"class_id": item["class_id"], "date_student": item["date_student"]}
            self._call(self.attendance_table, "delete_item", Key=key)
        return sum(1 for item in items if _is_mark(item))

    def record_erasure(self, student_id: str, at: dt.datetime) -> None:
        # Where the condition fails a later erasure is recorded already: it stays.
        self._conditional(
            self.erasures_table,
            "update_item",
            Key={"student_id": _s(student_id)},
            UpdateExpression="SET erased_at = :at",
            ConditionExpression="attribute_not_exists(erased_at) OR erased_at < :at",
            ExpressionAttributeValues={":at": _s(stamp(at))},
        )

    def erased_since(self, student_ids: Iterable[str], since: dt.datetime) -> set[str]:
        cutoff = stamp(since)
        return {
            item["student_id"]["S"]
            for item in self._batch_get(self.erasures_table, sorted(set(student_ids)))
            if item["erased_at"]["S"] >= cutoff
        }

    # --- accounts ------------------------------------------------------------------------------

    def create_account(self, account: Account) -> bool:
        return self._conditional(
            self.attendance_table,
            "put_item",
            Item={**_account_key(account.username), "account": _s(account.model_dump_json())},
            ConditionExpression="attribute_not_exists(class_id)",
        )

    def put_account(self, account: Account) -> None:
        self._conditional(
            self.attendance_table,
            "put_item",
            Item={**_account_key(account.username), "account": _s(account.model_dump_json())},
            ConditionExpression="attribute_exists(class_id)",
        )

    def get_account(self, username: str) -> Account | None:
        item = self._call(
            self.attendance_table, "get_item", Key=_account_key(username), ConsistentRead=True
        ).get("Item")
        return Account.model_validate_json(item["account"]["S"]) if item else None

    def list_accounts(self) -> list[Account]:
        items = self._pages(
            self.attendance_table,
            "query",
            KeyConditionExpression="class_id = :accounts",
            ExpressionAttributeValues={":accounts": _s(_ACCOUNTS)},
            ConsistentRead=True,
        )
        return [Account.model_validate_json(item["account"]["S"]) for item in items]

    # --- consent -------------------------------------------------------------------------------

    def put_consent(self, consent: Consent) -> None:
        self._call(self.attendance_table, "put_item", Item=_consent_item(consent))

    def get_consent(self, student_id: str) -> Consent | None:
        item = self._call(
            self.attendance_table, "get_item", Key=_consent_key(student_id), ConsistentRead=True
        ).get("Item")
        return _consent(item) if item else None

    def consents(self, student_ids: Iterable[str]) -> dict[str, Consent]:
        ids = sorted(set(student_ids))
        found: dict[str, Consent] = {}
        self._ensure_tables()
        table = self.attendance_table
        for start in range(0, len(ids), 100):  # BatchGetItem takes at most 100 keys
            request = {
                table: {
                    "Keys": [_consent_key(sid) for sid in ids[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            delay = 0.05
            while request:
                with self._errors(table):
                    reply = self._client().batch_get_item(RequestItems=request)
                for item in reply["Responses"].get(table, []):
                    consent = _consent(item)
                    found[consent.student_id] = consent
                request = reply.get("UnprocessedKeys") or {}
                if request:  # throttled part of the batch: back off, ask again
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
        return found

    def withdraw_consent(self, student_id: str, by: str, at: dt.datetime) -> Consent | None:
        # Where the condition fails there is no consent, or it was withdrawn already: that
        # withdrawal stays.
        self._conditional(
            self.attendance_table,
            "update_item",
            Key=_consent_key(student_id),
            UpdateExpression="SET withdrawn_at = :at, withdrawn_by = :by",
            ConditionExpression="attribute_exists(consent_of) AND attribute_not_exists(withdrawn_at)",
            ExpressionAttributeValues={":at": _s(at.isoformat()), ":by": _s(by)},
        )
        return self.get_consent(student_id)

    def delete_consent(self, student_id: str) -> bool:
        reply = self._call(
            self.attendance_table,
            "delete_item",
            Key=_consent_key(student_id),
            ReturnValues="ALL_OLD",
        )
        return bool(reply.get("Attributes"))

    def append_audit(self, entry: AuditEntry) -> None:
        self._call(
            self.audit_table,
            "put_item",
            Item={
                "log": _s("audit"),
                "at_id": _s(f"{entry.at.isoformat()}#{uuid.uuid4().hex}"),
                "at": _s(entry.at.isoformat()),
                "actor": _s(entry.actor),
                "action": _s(entry.action),
                "target": _s(entry.target),
                "detail": _s(json.dumps(entry.detail, sort_keys=True)),
            },
        )

    def list_audit(self, limit: int = 100) -> list[AuditEntry]:
        entries = []
        for item in self._pages(
            self.audit_table,
            "query",
            ScanIndexForward=False,
            ConsistentRead=True,
            KeyConditionExpression="#l = :log",
            ExpressionAttributeNames={"#l": "log"},
            ExpressionAttributeValues={":log": _s("audit")},
        ):
            entries.append(
                AuditEntry(
                    at=item["at"]["S"],
                    actor=item["actor"]["S"],
                    action=item["action"]["S"],
                    target=item["target"]["S"],
                    detail=json.loads(item["detail"]["S"]),
                )
            )
            if len(entries) >= limit:
                break
        return entries
