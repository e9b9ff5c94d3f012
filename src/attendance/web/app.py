"""The app factory. gunicorn runs ``attendance.web.app:create_app()``; importing this module does nothing."""

from __future__ import annotations

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from attendance.config.settings import Settings, get_settings
from attendance.domain.auth import TokenRegistry
from attendance.web.audit import bp as audit_bp
from attendance.web.auth import init_auth
from attendance.web.context import Services, init_services
from attendance.web.errors import register_error_handlers
from attendance.web.openapi import bp as openapi_bp
from attendance.web.routes.accounts import bp as accounts_bp
from attendance.web.routes.attendance import bp as attendance_bp
from attendance.web.routes.docs import bp as docs_bp
from attendance.web.routes.health import bp as health_bp
from attendance.web.routes.jobs import bp as jobs_bp
from attendance.web.routes.model import bp as model_bp
from attendance.web.routes.recognitions import bp as recognitions_bp
from attendance.web.routes.reports import bp as reports_bp
from attendance.web.routes.students import bp as students_bp

BLUEPRINTS = (
    health_bp,
    openapi_bp,
    docs_bp,
    accounts_bp,
    students_bp,
    recognitions_bp,
    jobs_bp,
    attendance_bp,
    reports_bp,
    model_bp,
    audit_bp,
)


class InsertionOrderJSON(DefaultJSONProvider):
    """Bodies keep the order their fields are declared in (the schemas' order), not A to Z."""

    sort_keys = False


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or get_settings()
    # No static files: every route is part of the documented API.
    app = Flask(__name__, static_folder=None)
    # werkzeug refuses larger bodies before reading them; that is the 413 payload_too_large.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.json = InsertionOrderJSON(app)
    init_services(app, services or Services.from_settings(settings))
    register_error_handlers(app)
    init_auth(app, TokenRegistry.load(settings.api_tokens, settings.api_tokens_file))
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
