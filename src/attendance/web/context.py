"""The stores one app instance uses, built once in create_app and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask, current_app

from attendance.config.settings import Settings
from attendance.dispatch import make_celery
from attendance.services.identity import IdentityProviders
from attendance.stores import open_stores
from attendance.stores.blob import BlobStore
from attendance.stores.gallery import GalleryRepository, Manifest
from attendance.stores.jobs import JobStore
from attendance.stores.records import RecordsStore
from attendance.stores.sessions import SessionStore

EXTENSION_KEY = "attendance"


@dataclass
class Services:
    settings: Settings
    blobs: BlobStore
    records: RecordsStore
    gallery_repo: GalleryRepository
    jobs: JobStore
    celery: Celery
    sessions: SessionStore
    identity: IdentityProviders

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        # Nothing here connects to Redis or a cloud store yet, so an app can be created while
        # one is down and /readyz can then say so.
        stores = open_stores(settings)
        return cls(
            settings=settings,
            blobs=stores.blobs,
            records=stores.records,
            gallery_repo=stores.gallery_repo,
            jobs=stores.jobs,
            celery=producer_celery(settings),
            sessions=SessionStore(stores.jobs.redis, settings.session_hours * 3600),
            identity=IdentityProviders(settings.oidc_providers),
        )


def producer_celery(settings: Settings) -> Celery:
    """The Celery app as the web uses it: to send tasks, never to read their results."""
    app = make_celery(settings)
    # Job state lives in JobStore. With a result backend every send would also subscribe this
    # process to the task's result channel, and retry that for ~20 s when Redis is down.
    app.conf.result_backend = "disabled"
    return app


def init_services(app: Flask, services: Services) -> None:
    app.extensions[EXTENSION_KEY] = services


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]


def current_manifest() -> Manifest | None:
    return services().gallery_repo.current_manifest()
