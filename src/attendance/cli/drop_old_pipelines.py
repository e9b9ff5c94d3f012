"""Remove from the gallery every embedding not made by the current pipeline (the settings' model
and detector), once POST /api/v1/model/reembed has re-embedded the students.

    attendance-drop-old-pipelines          # says what it would drop
    attendance-drop-old-pipelines --yes    # drops it
"""

from __future__ import annotations

import argparse
import sys

from attendance.config.settings import get_settings
from attendance.domain.pipelines import pipeline_id
from attendance.services.reembed import drop_other_pipelines, students_to_reembed
from attendance.stores.blob import open_blob_store
from attendance.stores.gallery import GalleryRepository
from attendance.stores.records import open_records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yes", action="store_true", help="drop them (else only report)")
    args = parser.parse_args()
    settings = get_settings()
    repo = GalleryRepository(
        open_blob_store(settings.blob_store_url, settings),
        open_records(settings.records_url, settings),
    )
    current = pipeline_id(settings)
    manifest = repo.current_manifest()
    if manifest is None:
        print("the gallery is empty")
        return 0
    by_pipeline = manifest.embeddings_by_pipeline()
    others = {p: sum(c.values()) for p, c in by_pipeline.items() if p != current}
    stale = set(students_to_reembed(manifest, current)) - set(by_pipeline.get(current, {}))
    print(
        f"current pipeline {current}; other pipelines: {others or 'none'}; "
        f"students with no embedding of {current}: {len(stale)}"
    )
    if not others or not args.yes:
        return 0
    version, dropped = drop_other_pipelines(repo, current)
    print(f"dropped {dropped} embeddings; gallery version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
