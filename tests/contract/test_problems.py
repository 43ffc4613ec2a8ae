"""Errors people can act on: every route of every service answers bad input with an RFC 9457
problem document (``application/problem+json``) naming the failing field, with no links to
library websites, and every OpenAPI document describes its errors as such documents.

The apps run in process without their lifespan: input is checked before any handler needs
the bus or the database, so whatever answers here is the request validation itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError
from tests.support.stack import API_KEY, service_env

from switchboard.analytics.app import create_app as create_analytics
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.app import create_app as create_crm
from switchboard.crm.settings import CrmSettings
from switchboard.flows.app import create_app as create_flows
from switchboard.flows.settings import FlowsSettings
from switchboard.ingest.app import create_app as create_ingest
from switchboard.ingest.settings import IngestSettings
from switchboard.mtproto.app import create_app as create_mtproto
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.outbound.app import create_app as create_outbound
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.http import (
    PROBLEM_JSON,
    PROBLEM_TYPE,
    document_problems,
    error,
    invalid,
    problem_body,
)
from switchboard.runtime.settings import load_settings

ADMIN = "problems-admin-token-1"
# service -> (app factory, settings class, bearer token)
SERVICES: dict[str, tuple[Callable[[Any], Any], type[Any], str]] = {
    "ingest": (create_ingest, IngestSettings, ADMIN),
    "crm": (create_crm, CrmSettings, API_KEY),
    "outbound": (create_outbound, OutboundSettings, API_KEY),
    "mtproto": (create_mtproto, MtprotoSettings, API_KEY),
    "analytics": (create_analytics, AnalyticsSettings, API_KEY),
    "flows": (create_flows, FlowsSettings, API_KEY),
}
TYPED = {"integer", "number", "boolean"}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = service_env(
        "nats://127.0.0.1:1", "postgresql://x@127.0.0.1:1/x", SWITCHBOARD_ADMIN_TOKEN=ADMIN
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _app(service: str) -> Any:
    factory, settings, _ = SERVICES[service]
    return factory(load_settings(settings))


def assert_problem(r: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """The response is a complete problem document, linking to no library's website."""
    assert r.headers["content-type"].startswith(PROBLEM_JSON), (r.status_code, r.text)
    problem: dict[str, Any] = r.json()
    if status is not None:
        assert problem["status"] == r.status_code == status, problem
    assert problem["status"] == r.status_code
    assert problem["type"] == PROBLEM_TYPE + problem["code"]
    assert problem["title"], problem
    assert problem["detail"], problem
    assert problem["instance"] == r.request.url.path, problem
    assert "http://" not in r.text, problem
    assert "https://" not in r.text, problem
    return problem


def _param_value(schema: dict[str, Any]) -> str | None:
    """A value the parameter's schema refuses, or None when any string passes."""
    schema = next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)
    if schema.get("type") in TYPED or "enum" in schema or schema.get("format") == "date-time":
        return "not-a-valid-value"
    if "maxLength" in schema:
        return "x" * (schema["maxLength"] + 1)
    if "minimum" in schema or "maximum" in schema:
        return "-99999999999"
    return None


def _bad_requests(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, request kwargs, the failing location) for every operation that takes
    input a schema can refuse: a body that is not what it declares, or a typed parameter."""
    cases = []
    for path, ops in doc["paths"].items():
        url = re.sub(r"\{[^}]+\}", "x1", path)
        for method, op in ops.items():
            if "requestBody" in op:
                cases.append((method, url, {"content": b"[1, 2]"}, "body"))
                continue
            for param in op.get("parameters", []):
                bad = _param_value(param.get("schema", {}))
                if bad is None or param["in"] not in ("query", "path"):
                    continue
                if param["in"] == "path":
                    target = path.replace("{" + param["name"] + "}", bad)
                    target = re.sub(r"\{[^}]+\}", "x1", target)
                    cases.append((method, target, {}, f"path.{param['name']}"))
                else:
                    params = {param["name"]: bad}
                    cases.append((method, url, {"params": params}, f"query.{param['name']}"))
                break
    return cases


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_every_route_answers_bad_input_with_a_problem_naming_the_field(
    service: str,
) -> None:
    app = _app(service)
    cases = _bad_requests(app.openapi())
    assert cases, f"{service} has no route that takes input?"
    headers = {"Authorization": f"Bearer {SERVICES[service][2]}"}
    headers["Content-Type"] = "application/json"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        for method, url, kwargs, where in cases:
            r = await http.request(method.upper(), url, headers=headers, **kwargs)
            assert r.status_code in (400, 422), (service, method, url, r.status_code, r.text)
            problem = assert_problem(r)
            paths = [e["path"] for e in problem.get("errors") or []]
            assert any(p.startswith(where) for p in paths), (service, method, url, problem)


@pytest.mark.parametrize("service", sorted(set(SERVICES) - {"analytics"}))  # reads only
async def test_a_json_body_sent_as_a_form_is_a_415_naming_the_type(service: str) -> None:
    """``curl -d '{...}'`` sends a JSON body as application/x-www-form-urlencoded, and the
    README's own examples did: FastAPI read it as a form and every route answered 422
    "body: Input should be a valid dictionary", which names no cause. Every route that
    takes only JSON now answers 415 saying which type it got and which it reads."""
    app = _app(service)
    headers = {"Authorization": f"Bearer {SERVICES[service][2]}",
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    routes = [
        (method, re.sub(r"\{[^}]+\}", "x1", path))
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
        if list(op.get("requestBody", {}).get("content", {})) == ["application/json"]
    ]
    assert routes, f"{service} takes no JSON body?"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        for method, url in routes:
            r = await http.request(method.upper(), url, headers=headers, content=b'{"a": 1}')
            problem = assert_problem(r, 415)
            assert problem["code"] == "unsupported_media_type", (service, method, url, problem)
            assert "application/x-www-form-urlencoded" in problem["detail"], problem
        if service == "outbound":  # an upload is multipart: its own answer, never "send JSON"
            r = await http.post("/v1/uploads", headers={**headers, "Content-Type": "text/plain"},
                                content=b"hello")  # fmt: skip
            problem = assert_problem(r, 422)
            assert "multipart/form-data" in problem["detail"], problem


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_unknown_routes_wrong_methods_and_bad_keys_are_problems(service: str) -> None:
    transport = httpx.ASGITransport(app=_app(service), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        assert_problem(await http.get("/no/such/route"), 404)
        assert_problem(await http.delete("/healthz"), 405)
        assert_problem(await http.get("/x?q=%00"), 400)
        protected = "/admin/accounts" if service == "ingest" else None
        if protected:
            assert_problem(await http.get(protected), 401)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_openapi_describes_every_error_as_a_problem(service: str) -> None:
    doc = _app(service).openapi()
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            assert {"422", "500"} <= set(responses), (path, method)
            for status, answer in responses.items():
                if status[0] in "45":
                    assert list(answer["content"]) == [PROBLEM_JSON], (path, method, status)


def test_ingest_webhook_rejections_are_problems_on_the_fast_path() -> None:
    """The raw fast path answers its own rejections in the same shape (tests/integration
    test_ingest_webhook covers them over a real server; this is the body it builds)."""
    body = problem_body(401, "bad_secret", "wrong secret", instance="/webhooks/telegram/demo")
    assert list(body) == ["type", "title", "status", "detail", "instance", "code"]
    assert body["title"] == "Unauthorized"


class _Thing(BaseModel):
    name: str
    size: int


def test_a_validation_error_becomes_errors_with_paths_and_no_links() -> None:
    with pytest.raises(ValidationError) as caught:
        _Thing.model_validate({"size": "big"})
    response = invalid(caught.value, "invalid_thing")
    problem = json.loads(bytes(response.body))
    assert response.status_code == 422
    assert response.media_type == PROBLEM_JSON
    assert problem["code"] == "invalid_thing"
    assert [e["path"] for e in problem["errors"]] == ["body.name", "body.size"]
    assert problem["detail"].startswith("body.name: Field required")
    assert "pydantic.dev" not in response.body.decode()


def test_extension_members_cannot_shadow_the_standard_ones() -> None:
    with pytest.raises(ValueError, match="detail"):
        error(422, "x", "message", detail="again")
    assert json.loads(bytes(error(429, "slow", "wait", retry_after_s=3).body))["retry_after_s"] == 3


def test_document_problems_leaves_success_answers_alone() -> None:
    doc = {
        "paths": {
            "/a": {
                "get": {
                    "responses": {
                        "200": {"description": "ok", "content": {"application/json": {}}},
                        "404": {"description": "missing"},
                    }
                }
            }
        }
    }
    out = document_problems(doc)["paths"]["/a"]["get"]["responses"]
    assert out["200"]["content"] == {"application/json": {}}
    assert list(out["404"]["content"]) == [PROBLEM_JSON]
    assert set(out) == {"200", "404", "422", "500"}


async def test_a_field_inside_a_tagged_union_is_named_by_its_path_in_the_body() -> None:
    """Pydantic puts the chosen member of a discriminated union in an error's location: an
    empty text was ``body.content.text.text`` and a photo's bad source
    ``body.content.photo.source``, paths that are in no request. Each is now the field's own
    path in the body, on a route that validates itself and on one with a body dependency."""
    app = _app("outbound")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    send = {"message_id": "m", "channel": "telegram", "account": "shop", "recipient": "1"}
    post = {"destination": {"channel": "telegram", "account": "shop", "chat": "@x"},
            "at": "2099-01-01T00:00:00Z"}  # fmt: skip
    cases = [
        ("/v1/messages", {**send, "content": {"kind": "text", "text": ""}}, "body.content.text"),
        ("/v1/messages", {**send, "content": {"kind": "photo", "source": {}}},
         "body.content.source"),
        ("/v1/messages",
         {**send, "content": {"kind": "media_group", "items": [
             {"kind": "photo", "source": {"url": "https://a.test/1"}},
             {"kind": "video", "source": {}}]}},
         "body.content.items.1.source"),
        ("/v1/calendar/posts", {**post, "content": {"kind": "text", "text": ""}},
         "body.content.text"),
    ]  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        for url, body, path in cases:
            r = await http.post(url, json=body, headers=headers)
            problem = assert_problem(r, 422)
            assert problem["errors"][0]["path"] == path, problem
            assert problem["detail"].startswith(f"{path}: "), problem
            assert all(".text.text" not in e["path"] for e in problem["errors"]), problem


async def test_a_session_string_telethon_cannot_read_is_a_422_naming_it() -> None:
    """An import of a string that is no Telethon StringSession was answered 201 ``active``
    and revoked at its first connect (``auth_key_unregistered``), found importing one on
    ``just up``. It is refused at the door; the answer never quotes the string."""
    app = _app("mtproto")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    garbage = "1BVtsOKABu1234567890garbagegarbagegarbage=="
    body = {"session": garbage, "api_id": 1, "api_hash": "0" * 32}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        r = await http.put("/v1/sessions/imported", json=body, headers=headers)
    problem = assert_problem(r, 422)
    assert [e["path"] for e in problem["errors"]] == ["body.session"], problem
    assert "not a Telethon session string" in problem["detail"], problem
    assert garbage not in r.text
