"""The OpenAPI document is generated: its component schemas are the pydantic models' own, every
route of the URL map has an operation, and the rules it states agree with the views' checks."""

from __future__ import annotations

import json
import re
from typing import get_args

import pytest
from flask import Blueprint, Flask
from pydantic import ValidationError

from attendance.config.settings import Settings
from attendance.domain import api_shapes
from attendance.domain.accounts import ROLES, NewAccount
from attendance.domain.errors import ValidationFailed
from attendance.domain.schemas import validate_identifier, validate_period
from attendance.web.apidoc import Reply, operation
from attendance.web.app import BLUEPRINTS, create_app
from attendance.web.auth import ROLE_ATTRIBUTE
from attendance.web.openapi import (
    REF_TEMPLATE,
    UndocumentedRoute,
    build_spec,
    documented_models,
)
from tests.unit.test_web_validation import settings_for

SETTINGS = Settings(_env_file=None)


def routes_only(*extra: Blueprint) -> Flask:
    app = Flask(__name__, static_folder=None)
    for blueprint in (*BLUEPRINTS, *extra):
        app.register_blueprint(blueprint)
    return app


@pytest.fixture(scope="module")
def app() -> Flask:
    return routes_only()


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return build_spec(app, SETTINGS)


def matches(pattern: str, value: str) -> bool:
    """As JSON Schema (ECMA-262) matches: its $ is the very end, never before a last newline."""
    return bool(re.search(re.sub(r"\$$", r"\\Z", pattern), value))


def test_every_component_is_its_models_own_schema(app, spec):
    components = spec["components"]["schemas"]
    covered: set[str] = set()
    for model, mode in documented_models(app):
        own = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode)
        for name, nested in own.pop("$defs", {}).items():
            assert components[name] == nested, name
            covered.add(name)
        name = model.__name__
        assert components[name] == own, name
        covered.add(name)
    # Nothing else: no component written by hand beside the models'.
    assert set(components) == covered


def test_every_ref_names_a_component(spec):
    text = json.dumps(spec)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs and refs <= set(spec["components"]["schemas"])


def test_every_route_of_the_url_map_has_an_operation(tmp_path, spec):
    served = create_app(settings_for(tmp_path))
    for rule in served.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"].get(path, {}), (method, rule.rule)


def test_a_route_without_a_declaration_fails_the_document():
    extra = Blueprint("extra", __name__)

    @extra.get("/api/v1/undeclared")
    def undeclared():
        return ""

    with pytest.raises(UndocumentedRoute, match="/api/v1/undeclared"):
        build_spec(routes_only(extra), SETTINGS)


def test_a_path_parameter_of_no_known_type_fails_the_document():
    extra = Blueprint("extra", __name__)

    @extra.get("/api/v1/things/<thing>")
    @operation("getThing", "A thing.", replies={200: Reply("It.")})
    def thing(thing: str):
        return ""

    with pytest.raises(UndocumentedRoute, match="thing"):
        build_spec(routes_only(extra), SETTINGS)


def test_the_open_operations_are_the_public_views(app, spec):
    for rule in app.url_map.iter_rules():
        public = getattr(app.view_functions[rule.endpoint], ROLE_ATTRIBUTE, True) is None
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            document = spec["paths"][path][method.lower()]
            assert (document.get("security") == []) == public, (method, path)
            assert ("401" in document["responses"]) != public or path == "/api/v1/sessions"


def test_operation_ids_are_unique(spec):
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_it_speaks_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    text = json.dumps(spec)
    # 3.0's way of saying null is gone; null is a type of its own.
    assert '"nullable"' not in text
    consent = spec["components"]["schemas"]["Student"]["properties"]["consent"]
    assert {"type": "null"} in consent["anyOf"]
    form = spec["paths"]["/api/v1/students"]["post"]["requestBody"]["content"]
    photo = form["multipart/form-data"]["schema"]["properties"]["photos"]["items"]
    assert photo["format"] == "binary" and "contentMediaType" in photo


def test_forms_and_queries_never_offer_null(spec):
    """A form field or a query parameter is left out, never sent as null."""
    for operations in spec["paths"].values():
        for document in operations.values():
            for parameter in document.get("parameters", ()):
                assert "anyOf" not in parameter["schema"], parameter
                assert parameter["schema"].get("default", "") is not None, parameter
            form = document.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            for name, schema in (form or {"schema": {"properties": {}}})["schema"][
                "properties"
            ].items():
                assert "anyOf" not in schema, name
                assert schema.get("default", "") is not None, name


def test_an_answer_built_from_its_model_is_what_the_document_says(tmp_path):
    client = create_app(settings_for(tmp_path)).test_client()
    body = client.get("/healthz").get_json()
    assert api_shapes.Health.model_validate(body) == api_shapes.Health(status="ok")


def test_the_documented_roles_are_the_roles():
    assert get_args(api_shapes.AccountRole) == ROLES


@pytest.mark.parametrize(
    "value", ["a", "A-1.b_c", "9" * 64, "", "-a", ".a", "..", "a b", "x" * 65, "é", "a\n"]
)
def test_the_identifier_pattern_agrees_with_validate_identifier(value):
    try:
        validate_identifier(value, "student_id")
        accepted = True
    except ValidationFailed:
        accepted = False
    assert matches(api_shapes.IDENTIFIER_PATTERN, value) == accepted


@pytest.mark.parametrize("value", ["", "1", "P3 maths", "p" * 32, "p" * 33, "-1", " 1", "a\n"])
def test_the_period_pattern_agrees_with_validate_period(value):
    try:
        validate_period(value)
        accepted = True
    except ValidationFailed:
        accepted = False
    assert matches(api_shapes.PERIOD_PATTERN, value) == accepted


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ms-smith", "password": "a long passphrase", "role": "teacher"},
        {"username": "ms-smith", "password": "short", "role": "teacher"},
        {"username": "Ms Smith", "password": "a long passphrase", "role": "teacher"},
        {"username": "ms-smith", "password": "tab\there is bad", "role": "teacher"},
        {"username": "ms-smith", "password": "x" * 257, "role": "teacher"},
        {"username": "ms", "password": "a long passphrase", "role": "teacher", "classes": ["r-1"]},
        {"username": "ms", "password": "a long passphrase", "role": "teacher", "classes": ["../"]},
        {
            "username": "ms",
            "password": "a long passphrase",
            "role": "teacher",
            "classes": ["a"] * 201,
        },
    ],
)
def test_the_documented_new_account_agrees_with_the_one_the_view_validates(body):
    def accepts(model) -> bool:
        try:
            model.model_validate(body)
        except ValidationError:
            return False
        return True

    assert accepts(api_shapes.NewAccountRequest) == accepts(NewAccount)
