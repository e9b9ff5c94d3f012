"""Blob store on Google Cloud Storage: ``gs://<bucket>[/<prefix>]``.

Every key is one object, written whole by a single upload (GCS has no partial objects), so the
gallery's immutable segments and manifests are either there in full or not at all; a manifest is
written before the pointer in the records store names it (src/attendance/stores/gallery.py), so no pointer ever
names a version whose objects are not all stored.

Transient failures (429, 5xx, connection errors, timeouts) are retried with exponential backoff
by google's ``Retry`` until ``cloud_retry_deadline_seconds``; uploads are retried too (they are
not by default), which is safe because a key is only ever written with the same bytes (uploads
and segments are named by their job, manifests carry a random suffix). Preconditions
(``if_generation_match``) are deliberately not relied on: the pointer's compare-and-set in the
records store is what serialises gallery commits.

``STORAGE_EMULATOR_HOST`` (read by google-cloud-storage) points the client at an emulator; it
then uses anonymous credentials and the project ``$GOOGLE_CLOUD_PROJECT`` (or "local-emulator").
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from attendance.domain.errors import NotFound, StoreBusy, StoreUnavailable
from attendance.stores.blob.base import check_key, check_prefix

log = logging.getLogger(__name__)

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "local-emulator"
# Answers worth another try later (after the client's own retries gave up).
_TRANSIENT = (
    gexc.RetryError,
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)


class GcsBlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        create_bucket: bool = False,
        timeout: float = 30.0,
        retry_deadline: float = 60.0,
        retry_initial_delay: float = 1.0,
        ping_timeout: float = 2.0,
        page_size: int | None = None,
        client: storage.Client | None = None,
    ):
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.create_bucket = create_bucket
        self.emulator = os.environ.get(EMULATOR_ENV) or None
        # (connect, read) per HTTP request; the retry deadline bounds a whole call.
        self.timeout = (min(timeout, 10.0), timeout)
        self.retry_deadline = retry_deadline
        # google's DEFAULT_RETRY (429, 5xx, connection errors, timeouts; exponential backoff
        # with jitter), for every call including uploads, bounded by the deadline.
        self.retry = DEFAULT_RETRY.with_timeout(retry_deadline).with_delay(
            initial=retry_initial_delay, maximum=max(retry_initial_delay, 32.0), multiplier=2.0
        )
        self.ping_timeout = ping_timeout
        self.page_size = page_size
        self._client = client
        self._lock = threading.RLock()
        self._bucket_ready = not create_bucket

    # --- plumbing ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        place = f"GCS bucket {self.bucket_name!r}"
        return f"{place} (emulator at {self.emulator})" if self.emulator else place

    def _make_client(self) -> storage.Client:
        if self.emulator:
            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_PROJECT
            return storage.Client(
                project=project,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.emulator},
            )
        # Application Default Credentials: the service account on Cloud Run / GKE / GCE, or
        # GOOGLE_APPLICATION_CREDENTIALS elsewhere.
        return storage.Client()

    @property
    def client(self) -> storage.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    with self._errors():
                        self._client = self._make_client()
        return self._client

    def _bucket(self) -> storage.Bucket:
        return self.client.bucket(self.bucket_name)

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _missing_bucket(self) -> StoreUnavailable:
        hint = "" if self.create_bucket else " (or set ATTENDANCE_GCS_CREATE_BUCKET=true)"
        return StoreUnavailable(f"{self.where} does not exist; create it{hint}")

    def translate(self, exc: BaseException) -> BaseException:
        """The AppError a client exception means, or ``exc`` itself when it is a bug of ours."""
        if isinstance(exc, gexc.NotFound):
            return self._missing_bucket()
        if isinstance(exc, (gexc.Forbidden, gexc.Unauthorized)):
            return StoreUnavailable(
                f"access to {self.where} was refused ({exc.code} {exc.message}); the service "
                "account needs roles/storage.objectUser on the bucket (docs/deploy.md)"
            )
        if isinstance(exc, (auth_exc.DefaultCredentialsError, auth_exc.RefreshError)):
            return StoreUnavailable(
                f"no usable Google credentials for {self.where}: {exc}; run with a service "
                "account or set GOOGLE_APPLICATION_CREDENTIALS"
            )
        if isinstance(exc, _TRANSIENT):
            cause = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause else exc
            return StoreBusy(
                f"{self.where} is unreachable or failing (gave up after retrying for "
                f"{self.retry_deadline:g}s): {type(cause).__name__}: {str(cause)[:300]}"
            )
        if isinstance(exc, gexc.GoogleAPICallError):
            return StoreUnavailable(f"{self.where} refused the request: {exc.code} {exc.message}")
        return exc

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (NotFound, StoreUnavailable):
            raise
        except Exception as exc:
            mapped = self.translate(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def _ensure_bucket(self, timeout=None, retry: object = "default") -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if self._bucket_ready:
                return
            timeout = timeout or self.timeout
            retry = self.retry if retry == "default" else retry
            with self._errors():
                bucket = self.client.bucket(self.bucket_name)
                if not bucket.exists(timeout=timeout, retry=retry):
                    try:
                        self.client.create_bucket(bucket, timeout=timeout, retry=retry)
                        log.info("created %s", self.where)
                    except gexc.Conflict:
                        pass  # another process created it first
            self._bucket_ready = True

    # --- BlobStore -----------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        name = self._name(key)
        self._ensure_bucket()
        with self._errors():
            self._bucket().blob(name).upload_from_string(
                data, content_type=content_type, timeout=self.timeout, retry=self.retry
            )

    def get(self, key: str) -> bytes:
        name = self._name(key)
        self._ensure_bucket()
        with self._errors():
            try:
                return (
                    self._bucket()
                    .blob(name)
                    .download_as_bytes(timeout=self.timeout, retry=self.retry)
                )
            except gexc.NotFound:
                # A missing object, or a missing bucket: only the second is an outage.
                self._probe_bucket(self.timeout, self.retry)
                raise NotFound(f"no stored object {key!r}") from None

    def exists(self, key: str) -> bool:
        name = self._name(key)
        self._ensure_bucket()
        with self._errors():
            return self._bucket().blob(name).exists(timeout=self.timeout, retry=self.retry)

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._ensure_bucket()
        with self._errors():
            try:
                self._bucket().blob(name).delete(timeout=self.timeout, retry=self.retry)
            except gexc.NotFound:
                pass  # already gone, as LocalBlobStore.delete

    # builtins.list: inside the class, ``list`` is the method.
    def list(self, prefix: str) -> builtins.list[str]:
        return sorted(name for name, _ in self._listing(prefix))

    def list_older_than(self, prefix: str, cutoff: dt.datetime) -> builtins.list[str]:
        return sorted(name for name, updated in self._listing(prefix) if updated < cutoff)

    def modified_at(self, key: str) -> dt.datetime:
        name = self._name(key)
        self._ensure_bucket()
        with self._errors():
            blob = self._bucket().get_blob(name, timeout=self.timeout, retry=self.retry)
            if blob is None or blob.updated is None:
                # A missing object, or a missing bucket: only the second is an outage.
                self._probe_bucket(self.timeout, self.retry)
                raise NotFound(f"no stored object {key!r}")
            return blob.updated

    def _listing(self, prefix: str) -> builtins.list[tuple[str, dt.datetime]]:
        check_prefix(prefix)
        # Whole path segments, as in a directory: "uploads/ab" does not list "uploads/abc/x".
        rel = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        full = f"{self.prefix}/{rel}" if self.prefix else rel
        strip = len(f"{self.prefix}/") if self.prefix else 0
        self._ensure_bucket()
        with self._errors():
            blobs = self.client.list_blobs(
                self.bucket_name,
                prefix=full or None,
                page_size=self.page_size,
                timeout=self.timeout,
                retry=self.retry,
            )
            # The iterator follows nextPageToken page by page.
            return [(blob.name[strip:], blob.updated) for blob in blobs]

    def _probe_bucket(self, timeout, retry) -> None:
        """List at most one object: raises the missing-bucket error (or a refusal) if the
        bucket is not usable. Needs only storage.objects.list, unlike a bucket lookup."""
        with self._errors():
            page = self.client.list_blobs(
                self.bucket_name,
                prefix=f"{self.prefix}/" if self.prefix else None,
                max_results=1,
                timeout=timeout,
                retry=retry,
            )
            list(page)

    def ping(self) -> None:
        """One short listing call: the bucket exists and answers to these credentials."""
        timeout = (self.ping_timeout, self.ping_timeout)
        self._ensure_bucket(timeout=timeout, retry=None)
        try:
            self._probe_bucket(timeout, None)
        except StoreBusy as exc:  # readyz wants the reason, not "gave up after retrying"
            raise StoreUnavailable(
                f"{self.where} did not answer within {self.ping_timeout:g}s: "
                f"{exc.__cause__ or exc}"[:400]
            ) from exc
