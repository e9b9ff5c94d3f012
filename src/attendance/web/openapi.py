"""The OpenAPI 3.1 description of every route, served at /api/v1/openapi.json.

Generated, never written by hand: the paths from the app's URL map, each operation from the
declaration beside its view (attendance.web.apidoc), and the component schemas from the
pydantic models themselves (pydantic's JSON Schema 2020-12 is what OpenAPI 3.1 takes). A route
without a declaration makes the document fail to build.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from attendance.config.settings import Settings
from attendance.domain.api_shapes import Digits, Error, Identifier, IsoDate, JobId, Username
from attendance.web.apidoc import (
    IMAGE_TYPES,
    Operation,
    Reply,
    body_models,
    declared_operation,
    operation,
)
from attendance.web.auth import ROLE_ATTRIBUTE, public
from attendance.web.context import services

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]
# A path parameter's type by its name; a view's declaration may say otherwise.
PATH_PARAMETERS: dict[str, Any] = {
    "student_id": Identifier,
    "class_id": Identifier,
    "job_id": JobId,
    "date": IsoDate,
    "n": Digits,
    "k": Digits,
    "username": Username,
}
# werkzeug's converters that say more than the name: <int:n> takes only digits.
CONVERTER_SCHEMAS = {"int": {"type": "integer", "minimum": 0}}
_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
EXTRA_METHODS = {"HEAD", "OPTIONS"}
EXTENSION_KEY = "attendance_openapi"


class UndocumentedRoute(LookupError):
    """A route whose view declares no operation."""


@dataclass(frozen=True)
class Route:
    path: str
    method: str
    operation: Operation
    public: bool
    variables: tuple[tuple[str | None, str], ...]
    # The blueprint: the page groups the operations by it.
    tag: str


def routes(app: Flask) -> Iterator[Route]:
    """Every method of every rule of the app, with its view's declared operation."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        declared = declared_operation(view)
        methods = sorted((rule.methods or set()) - EXTRA_METHODS)
        if declared is None:
            raise UndocumentedRoute(
                f"{', '.join(methods)} {rule.rule} ({rule.endpoint}) declares no operation: "
                "add @operation(...) from attendance.web.apidoc to its view"
            )
        variables = tuple((m["converter"], m["name"]) for m in _VARIABLE.finditer(rule.rule))
        path = _VARIABLE.sub(lambda m: "{" + m["name"] + "}", rule.rule)
        is_public = getattr(view, ROLE_ATTRIBUTE, True) is None
        tag = rule.endpoint.partition(".")[0]
        for method in methods:
            yield Route(path, method.lower(), declared, is_public, variables, tag)


def documented_models(app: Flask) -> list[tuple[type[BaseModel], Mode]]:
    """The models the components are made of: JSON bodies as they are validated, answers as
    they are serialized, and the error shape."""
    found: dict[tuple[type[BaseModel], Mode], None] = {(Error, "serialization"): None}
    for route in routes(app):
        for model in body_models(route.operation):
            found[(model, "validation")] = None
        for reply in route.operation.replies.values():
            if reply.model is not None:
                found[(reply.model, "serialization")] = None
    return list(found)


def _inline(model: type[BaseModel]) -> dict:
    """A form's or a query's schema, inline: they hold single values, never other models."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    if "$defs" in schema:
        raise TypeError(f"{model.__name__}: a form or a query holds no other model")
    return schema


def _absent_not_null(schema: dict) -> dict:
    """An optional form field or query parameter is left out, never sent as null (neither can
    say null): the schema of its value alone."""
    variants = schema.get("anyOf")
    if not variants or {"type": "null"} not in variants:
        return schema
    rest = [v for v in variants if v != {"type": "null"}]
    outer = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    inner = rest[0] if len(rest) == 1 else {"anyOf": rest}
    return {**inner, **outer}


def _parameters(route: Route) -> list[dict]:
    parameters = []
    for converter, name in route.variables:
        if converter in CONVERTER_SCHEMAS:
            schema = CONVERTER_SCHEMAS[converter]
        else:
            declared = route.operation.path.get(name, PATH_PARAMETERS.get(name))
            if declared is None:
                raise UndocumentedRoute(f"{route.path}: no type for the path parameter {name!r}")
            schema = TypeAdapter(declared).json_schema()
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    if route.operation.query is not None:
        query = _inline(route.operation.query)
        required = set(query.get("required", ()))
        for name, schema in query["properties"].items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": schema if name in required else _absent_not_null(schema),
                }
            )
    return parameters


def _form(operation: Operation, settings: Settings) -> dict:
    assert operation.form is not None
    schema = _inline(operation.form.model)
    required = set(schema.get("required", ()))
    properties = {
        name: value if name in required else _absent_not_null(value)
        for name, value in schema["properties"].items()
    }
    count = operation.form.max_photos(settings)
    properties["photos"] = {
        **properties["photos"],
        "maxItems": count,
        "description": f"1 to {count} image files ({IMAGE_TYPES}).",
    }
    # No additionalProperties: a form's other fields are ignored, not refused.
    return {
        "schema": {"type": "object", "properties": properties, "required": sorted(required)},
        "encoding": {"photos": {"contentType": IMAGE_TYPES}},
    }


def _request_body(operation: Operation, settings: Settings, refs: dict) -> dict | None:
    content: dict[str, dict] = {}
    if operation.form is not None:
        content["multipart/form-data"] = _form(operation, settings)
    schemas = [refs[(model, "validation")] for model in body_models(operation)]
    if schemas:
        content["application/json"] = {
            "schema": schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        }
    if not content:
        return None
    return {"required": operation.body_required, "content": content}


def _responses(route: Route, refs: dict) -> dict:
    error = {"application/json": {"schema": refs[(Error, "serialization")]}}
    responses: dict[str, dict] = {}
    for status, reply in route.operation.replies.items():
        content: dict[str, dict] = {}
        if reply.model is not None:
            content["application/json"] = {"schema": refs[(reply.model, "serialization")]}
        content.update({media: {"schema": schema} for media, schema in reply.media.items()})
        answer: dict[str, Any] = {"description": reply.description}
        if content:
            answer["content"] = content
        if reply.links:
            answer["links"] = dict(reply.links)
        responses[str(status)] = answer
    errors = dict(route.operation.errors)
    if not route.public:
        errors.setdefault(401, "No valid bearer token.")
        errors.setdefault(403, "The token's role (or classes) may not do this.")
    for status, description in errors.items():
        responses[str(status)] = {"description": description, "content": error}
    ordered = dict(sorted(responses.items()))
    ordered["default"] = {"description": "Any other error, in the same shape.", "content": error}
    return ordered


def build_spec(app: Flask, settings: Settings) -> dict:
    models = documented_models(app)
    refs, definitions = models_json_schema(models, ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, dict]] = {}
    seen: set[str] = set()
    for route in routes(app):
        op = route.operation
        if op.operation_id in seen:
            raise ValueError(f"operationId {op.operation_id!r} is declared twice")
        seen.add(op.operation_id)
        document: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [route.tag],
        }
        if parameters := _parameters(route):
            document["parameters"] = parameters
        if body := _request_body(op, settings, refs):
            document["requestBody"] = body
        document["responses"] = _responses(route, refs)
        if route.public:
            document["security"] = []
        paths.setdefault(route.path, {})[route.method] = document
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Classroom attendance API",
            "version": "1.0.0",
            "description": (
                "Enroll students from photos and take attendance from class photos. Both run "
                "as jobs: POST answers 202 with a status_url to poll. Every error is "
                '{"error": {"code": ..., "message": ...}}.'
            ),
        },
        # In the order the app registers them: health first, then each blueprint's routes.
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token or a login's session token; roles: admin, "
                    "teacher, viewer.",
                }
            },
        },
    }


@bp.get("/api/v1/openapi.json")
@public
@operation(
    "openapi",
    "This document.",
    replies={200: Reply("OpenAPI 3.1 document.", media={"application/json": {"type": "object"}})},
)
def openapi_json():
    # The same for the app's whole life: the routes and the settings do not change.
    spec = current_app.extensions.get(EXTENSION_KEY)
    if spec is None:
        spec = build_spec(current_app, services().settings)
        current_app.extensions[EXTENSION_KEY] = spec
    return jsonify(spec)
