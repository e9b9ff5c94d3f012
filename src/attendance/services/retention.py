"""Delete uploaded class photos and annotated images once their retention period is over."""

from __future__ import annotations

import datetime as dt
import logging

from attendance.domain.keys import EXPIRING_PREFIXES
from attendance.stores.blob import BlobStore

log = logging.getLogger(__name__)


def purge_expired(blobs: BlobStore, retention_days: float, now: dt.datetime | None = None) -> int:
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    removed = 0
    for prefix in EXPIRING_PREFIXES:
        for key in blobs.list_older_than(prefix, cutoff):
            blobs.delete(key)
            removed += 1
    log.info("retention: deleted %d photos written before %s", removed, cutoff.isoformat())
    return removed
