"""Records stores (students, attendance, the gallery's current-version pointer), chosen by
records_url.

``RecordsStore`` (base.py) is what every backend answers; ``open_records`` opens the one a URL
names, through ``OPENERS``: one entry per scheme of attendance.config.urls.RECORDS_SCHEMES.
"""

from __future__ import annotations

from collections.abc import Callable

from attendance.config.settings import Settings, default_settings
from attendance.config.urls import parse_dynamodb_url, parse_sqlite_url, records_scheme
from attendance.stores.records.base import (
    Expected,
    GalleryPointer,
    RecordsStore,
    erased_message,
    stamp,
)
from attendance.stores.records.sqlite import SqliteRecords

__all__ = [
    "OPENERS",
    "Expected",
    "GalleryPointer",
    "RecordsStore",
    "SqliteRecords",
    "erased_message",
    "open_records",
    "stamp",
]


def _open_sqlite(url: str, settings: Settings) -> RecordsStore:
    return SqliteRecords(
        parse_sqlite_url(url).path,
        busy_timeout=settings.sqlite_busy_timeout_seconds,
        ping_timeout=settings.store_ping_timeout_seconds,
    )


def _open_dynamodb(url: str, settings: Settings) -> RecordsStore:
    # Imported here so that boto3 is loaded only where dynamodb:// is used.
    from attendance.stores.records.dynamodb import DynamoRecords

    parsed = parse_dynamodb_url(url)
    return DynamoRecords(
        parsed.table_prefix,
        region=parsed.region,
        endpoint_url=parsed.endpoint_url,
        page_size=parsed.page_size,
        create_tables=settings.dynamodb_create_tables,
        max_attempts=settings.cloud_max_attempts,
        retry_mode=settings.aws_retry_mode,
        timeout=settings.cloud_timeout_seconds,
        ping_timeout=settings.store_ping_timeout_seconds,
    )


# How to open each scheme: (the URL, the settings) -> the store.
OPENERS: dict[str, Callable[[str, Settings], RecordsStore]] = {
    "sqlite:///": _open_sqlite,
    "dynamodb://": _open_dynamodb,
}


def open_records(url: str, settings: Settings | None = None) -> RecordsStore:
    """The store a URL names; cloud clients take their timeouts and retries from ``settings``
    (defaults when None). SQLite creates its file now; DynamoDB contacts AWS on first use."""
    return OPENERS[records_scheme(url)](url, settings or default_settings())
