"""Every backend of a store interface answers the same contract tests.

``blob_store`` runs each test on local files and on GCS; ``records`` on SQLite and on DynamoDB;
``repo`` (the gallery) on every pairing of the two. The cloud backends are reached over real
HTTP on emulators (tests/emulators.py), each test with its own bucket or table prefix, and with
page sizes of 2 so that every listing really follows its continuation token.
"""

from __future__ import annotations

import pytest

from attendance.stores.blob import LocalBlobStore
from attendance.stores.gallery import GalleryRepository
from attendance.stores.records import SqliteRecords
from tests.emulators import unique

BLOB_BACKENDS = ["local", "gcs"]
RECORDS_BACKENDS = ["sqlite", "dynamodb"]
PAGE_SIZE = 2


def gcs_store(emulators, **kwargs):
    from attendance.stores.blob.gcs import GcsBlobStore

    kwargs.setdefault("create_bucket", True)
    kwargs.setdefault("retry_deadline", 5.0)
    kwargs.setdefault("page_size", PAGE_SIZE)
    return GcsBlobStore(unique("contract"), "tenant/a", **kwargs)


def dynamo_store(emulators, **kwargs):
    from attendance.stores.records.dynamodb import DynamoRecords
    from tests.emulators import REGION

    kwargs.setdefault("page_size", PAGE_SIZE)
    kwargs.setdefault("max_attempts", 3)
    return DynamoRecords(
        unique("contract"), region=REGION, endpoint_url=emulators.dynamodb.endpoint, **kwargs
    )


@pytest.fixture(params=BLOB_BACKENDS)
def blob_store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "store")
    return gcs_store(request.getfixturevalue("emulators"))


@pytest.fixture(params=RECORDS_BACKENDS)
def records(request, tmp_path):
    if request.param == "sqlite":
        return SqliteRecords(tmp_path / "db.sqlite")
    return dynamo_store(request.getfixturevalue("emulators"))


@pytest.fixture
def repo(blob_store, records):
    return GalleryRepository(blob_store, records)
