"""The API's own readable page, /api/v1/docs: Swagger UI over /api/v1/openapi.json.

Swagger UI's files come from the flask-swagger-ui package (Swagger UI 5, which renders OpenAPI
3.1) and are served from here, so the page works with no network beyond the API; only the files
the page loads are served. The page and its start-up script are our own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import flask_swagger_ui
from flask import Blueprint, Response, send_from_directory, url_for

from attendance.domain.errors import NotFound
from attendance.web.apidoc import TEXT, Reply, operation
from attendance.web.auth import public

bp = Blueprint("docs", __name__)

Asset = Literal["swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "docs.js"]
ASSETS: tuple[str, ...] = get_args(Asset)
SWAGGER_UI = Path(flask_swagger_ui.__file__).parent / "dist"
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
@operation(
    "docs",
    "This document as a page to read and try (Swagger UI, served from here).",
    replies={200: Reply("HTML.", media={"text/html": TEXT})},
)
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
@operation(
    "docsAsset",
    "A file of that page.",
    path={"asset": Asset},
    replies={
        200: Reply(
            "The file.",
            media={
                "text/css": TEXT,
                "text/javascript": TEXT,
                "image/png": {"type": "string", "contentMediaType": "image/png"},
            },
        )
    },
    errors={404: "No such file."},
)
def docs_asset(asset: str):
    if asset not in ASSETS:
        raise NotFound(f"the docs page has no file {asset!r}", code="not_found")
    if asset == "docs.js":
        return Response(_START, mimetype="text/javascript")
    return send_from_directory(SWAGGER_UI, asset, max_age=86400)
