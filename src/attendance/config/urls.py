"""What the store URLs of the settings mean: ``blob_store_url`` (file://, gs://) and
``records_url`` (sqlite:///, dynamodb://).

Parsing is pure (nothing is contacted), so the settings validate a URL with the same parser the
stores open it with, and a bad URL is refused at start-up with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_SAFE_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def is_safe_path(path: str) -> bool:
    """'/'-separated segments of [A-Za-z0-9._-], none of them '.' or '..': the grammar of blob
    keys, and so of the object prefix in a gs:// URL.

    fullmatch, not match with '$': '$' also matches before a trailing newline."""
    return bool(_SAFE_PATH.fullmatch(path)) and not any(
        part in (".", "..") for part in path.split("/")
    )


# --- blob_store_url -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileUrl:
    root: Path


@dataclass(frozen=True)
class GsUrl:
    bucket: str
    prefix: str  # "" or "some/prefix" (no leading or trailing '/')


def parse_file_url(url: str) -> FileUrl:
    """``file://<dir>``: the directory, relative to the working directory unless absolute."""
    return FileUrl(Path(_after(url, "file://")))


# GCS bucket names: 3-63 characters (222 with dots) of lowercase letters, digits, '-', '_' and
# '.', starting and ending with a letter or a digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def parse_gs_url(url: str) -> GsUrl:
    """``gs://bucket`` or ``gs://bucket/prefix/path``; ValueError says what is wrong."""
    rest = _after(url, "gs://")
    if "?" in rest or "#" in rest:
        raise ValueError("a gs:// blob_store_url takes no query or fragment")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket) or (len(bucket) > 63 and "." not in bucket):
        raise ValueError(
            f"invalid GCS bucket name {bucket!r} in blob_store_url: 3-63 lowercase letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    if prefix and not is_safe_path(prefix):
        raise ValueError(
            f"invalid object prefix {prefix!r} in blob_store_url: '/'-separated parts of "
            "letters, digits, '.', '_' or '-'"
        )
    return GsUrl(bucket, prefix)


# --- records_url ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqliteUrl:
    path: Path


@dataclass(frozen=True)
class DynamoUrl:
    table_prefix: str
    region: str | None = None
    endpoint_url: str | None = None
    page_size: int | None = None  # Limit per Query/Scan page; None: DynamoDB's 1 MB pages


def parse_sqlite_url(url: str) -> SqliteUrl:
    """``sqlite:///<path>``: relative to the working directory, or absolute as sqlite:////x."""
    return SqliteUrl(Path(_after(url, "sqlite:///")))


# DynamoDB table names are 3-255 of [A-Za-z0-9_.-]; the prefix leaves room for "-class-members".
_TABLE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_DYNAMODB_OPTIONS = ("region", "endpoint_url", "page_size")


def parse_dynamodb_url(url: str) -> DynamoUrl:
    """``dynamodb://<table-prefix>[?region=...][&endpoint_url=...][&page_size=...]``."""
    parts = urlsplit(url)
    if parts.scheme != "dynamodb":
        raise ValueError(f"not a dynamodb:// URL: {url!r}")
    if not _TABLE_PREFIX.fullmatch(parts.netloc) or parts.path not in ("", "/"):
        raise ValueError(
            "records_url must be dynamodb://<table-prefix>?region=...: the prefix is 1-200 of "
            f"letters, digits, '_', '.' or '-', got {parts.netloc + parts.path!r}"
        )
    options = _dynamodb_options(parts.query)
    endpoint = options.get("endpoint_url")
    if endpoint is not None and not re.match(r"^https?://[^/?#\s]+/?$", endpoint):
        raise ValueError(
            f"records_url endpoint_url must be http(s)://host[:port], got {endpoint!r}"
        )
    page_size = options.get("page_size")
    if page_size is not None:
        if not page_size.isdigit() or not 1 <= int(page_size) <= 1000:
            raise ValueError("records_url page_size must be an integer from 1 to 1000")
    return DynamoUrl(
        table_prefix=parts.netloc,
        region=options.get("region"),
        endpoint_url=endpoint.rstrip("/") if endpoint else None,
        page_size=int(page_size) if page_size else None,
    )


def _dynamodb_options(query: str) -> dict[str, str]:
    """The known options of the query string, each given exactly once and not empty."""
    values = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(values) - set(_DYNAMODB_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown records_url option(s) {', '.join(unknown)}; "
            f"known: {', '.join(_DYNAMODB_OPTIONS)}"
        )
    options = {}
    for key, given in values.items():
        if len(given) != 1 or not given[0]:
            raise ValueError(f"records_url option {key} needs exactly one non-empty value")
        options[key] = given[0]
    return options


# --- the known schemes ----------------------------------------------------------------------------

BlobUrl = FileUrl | GsUrl
RecordsUrl = SqliteUrl | DynamoUrl

# Each setting's schemes, in the order its error message names them. The stores keep a table
# with the same keys, of how to open each (attendance.stores.blob, attendance.stores.records).
BLOB_SCHEMES: dict[str, Callable[[str], BlobUrl]] = {
    "file://": parse_file_url,
    "gs://": parse_gs_url,
}
RECORDS_SCHEMES: dict[str, Callable[[str], RecordsUrl]] = {
    "sqlite:///": parse_sqlite_url,
    "dynamodb://": parse_dynamodb_url,
}


def blob_scheme(url: str) -> str:
    """The scheme of a blob_store_url (a key of BLOB_SCHEMES); ValueError if unknown."""
    return _scheme(url, BLOB_SCHEMES, "blob_store_url")


def records_scheme(url: str) -> str:
    """The scheme of a records_url (a key of RECORDS_SCHEMES); ValueError if unknown."""
    return _scheme(url, RECORDS_SCHEMES, "records_url")


def parse_blob_store_url(url: str) -> BlobUrl:
    """What a blob_store_url names; ValueError says what is wrong."""
    return BLOB_SCHEMES[blob_scheme(url)](url)


def parse_records_url(url: str) -> RecordsUrl:
    """What a records_url names; ValueError says what is wrong."""
    return RECORDS_SCHEMES[records_scheme(url)](url)


def _scheme(url: str, schemes: Collection[str], setting: str) -> str:
    for scheme in schemes:
        if url.startswith(scheme):
            return scheme
    raise ValueError(f"{setting} must start with {' or '.join(schemes)}")


def _after(url: str, scheme: str) -> str:
    if not url.startswith(scheme):
        raise ValueError(f"not a {scheme} URL: {url!r}")
    return url[len(scheme) :]


# Plain http only on this machine's loopback (a provider run for a test or a demo): anywhere
# else the keys that sign logins must come over TLS.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_oidc_metadata_url(url: str) -> str:
    """An identity provider's discovery URL, checked: https (http on loopback only)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError(f"an identity provider's URL must be https: {url!r}")
    return url
