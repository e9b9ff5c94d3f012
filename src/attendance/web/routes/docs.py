"""The API's own readable page, /api/v1/docs: Swagger UI over /api/v1/openapi.json.

Swagger UI's files come from the swagger-ui-bundle package and are served from here, so the
page works with no network beyond the API; only the files the page loads are served.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

from attendance.domain.errors import NotFound
from attendance.web.auth import public

bp = Blueprint("docs", __name__)

ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "docs.js")
# Our own start-up script (a file, not an inline script: the page works under a strict CSP).
_START = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Classroom attendance API</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" type="image/png" href="{icon}">
</head>
<body data-spec="{spec}">
<div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script src="{start}"></script>
</body>
</html>
"""


@bp.get("/api/v1/docs")
@public
def docs_page():
    def asset(name: str) -> str:
        return url_for("docs.docs_asset", asset=name)

    page = _PAGE.format(
        css=asset("swagger-ui.css"),
        icon=asset("favicon-32x32.png"),
        bundle=asset("swagger-ui-bundle.js"),
        start=asset("docs.js"),
        spec=url_for("openapi.openapi_json"),
    )
    return Response(page, mimetype="text/html")


@bp.get("/api/v1/docs/<asset>")
@public
def docs_asset(asset: str):
    if asset not in ASSETS:
        raise NotFound(f"the docs page has no file {asset!r}", code="not_found")
    if asset == "docs.js":
        return Response(_START, mimetype="text/javascript")
    return send_from_directory(swagger_ui_path, asset, max_age=86400)
