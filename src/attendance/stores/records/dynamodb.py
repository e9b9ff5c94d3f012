"""Records store on DynamoDB: ``dynamodb://<prefix>?region=<region>&endpoint_url=<url>``.

Five tables, each shaped for the queries the API serves (docs/deploy.md has the same in prose):

``<prefix>-students``       HASH student_id. name, created_at, class_ids (string set).
``<prefix>-class-members``  HASH class_id, RANGE student_id: a class's roster is one Query.
``<prefix>-attendance``     HASH class_id, RANGE date_student ("2026-01-05#ann"): one class on
                            one date or over a date range is one Query on the key. GSI
                            ``by_student`` (HASH student_id, RANGE date, all attributes): one
                            student's history over a date range is one Query.
``<prefix>-gallery``        HASH scope ("global"): version, manifest_key, updated_at.
``<prefix>-audit``          HASH log ("audit"), RANGE at_id ("<ISO time>#<uuid>"): the audit log,
                            newest first is one Query in reverse.
``<prefix>-erasures``       HASH student_id. erased_at: the tombstones of erased students.

An attendance item also holds ``job_ids`` (string set): every recognition job that saw the
student for that class and date, so that an erasure finds all their photos.

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

from attendance.domain.errors import StoreBusy, StoreUnavailable, StudentErased
from attendance.domain.schemas import AttendanceRecord, AuditEntry, Student
from attendance.stores.records.base import GalleryPointer, erased_message, stamp, utc_now_iso

log = logging.getLogger(__name__)

GALLERY_SCOPE = "global"
STUDENT_INDEX = "by_student"
# Above any "#<student_id>" suffix: student ids are [A-Za-z0-9._-] and '$' sorts after '#'.
_DATE_END = "$"

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

    def mark_present(
        self, record: AttendanceRecord, *, not_erased_since: dt.datetime | None = None
    ) -> bool:
        day = record.date.isoformat()
        item = {
            "class_id": _s(record.class_id),
            "date_student": _s(f"{day}#{record.student_id}"),
            "date": _s(day),
            "student_id": _s(record.student_id),
            "name": _s(record.name),
            "first_seen_at": _s(record.first_seen_at.isoformat()),
            "distance": {"N": repr(float(record.distance))},
        }
        if record.job_id is not None:
            item["job_id"] = _s(record.job_id)
            item["job_ids"] = {"SS": [record.job_id]}
        put = {
            "TableName": self.attendance_table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(class_id)",
        }
        items = [{"Put": put}]
        if not_erased_since is not None:
            items.insert(0, self._not_erased(record.student_id, not_erased_since))
        codes = self._transact(self.attendance_table, items)
        if not codes:
            return True
        if len(codes) == 2 and codes[0] == "ConditionalCheckFailed":
            raise StudentErased(erased_message(record.student_id))
        # Marked already: note this job among those that saw the student.
        if record.job_id is not None:
            self._conditional(
                self.attendance_table,
                "update_item",
                Key={"class_id": item["class_id"], "date_student": item["date_student"]},
                UpdateExpression="ADD job_ids :j",
                ConditionExpression="attribute_exists(class_id)",
                ExpressionAttributeValues={":j": {"SS": [record.job_id]}},
            )
        return False

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
        return AttendanceRecord(
            class_id=item["class_id"]["S"],
            date=item["date"]["S"],
            student_id=item["student_id"]["S"],
            name=item["name"]["S"],
            first_seen_at=item["first_seen_at"]["S"],
            distance=float(item["distance"]["N"]),
            job_id=item["job_id"]["S"] if "job_id" in item else None,
        )

    def list_attendance(
        self,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
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
        records = [self._record(item) for item in self._pages(table, operation, **kwargs)]
        return sorted(records, key=lambda r: (r.date, r.class_id, r.student_id))

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
        keys = [
            {"class_id": item["class_id"], "date_student": item["date_student"]}
            for item in self._pages(
                self.attendance_table,
                "query",
                IndexName=STUDENT_INDEX,
                KeyConditionExpression="student_id = :sid",
                ExpressionAttributeValues={":sid": _s(student_id)},
            )
        ]
        for key in keys:
            self._call(self.attendance_table, "delete_item", Key=key)
        return len(keys)

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
