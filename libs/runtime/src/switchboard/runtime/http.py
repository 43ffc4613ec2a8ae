"""The HTTP surface every service shares: ``/healthz`` (the process can still work: 503 once
a connection it cannot get back is lost, so the orchestrator restarts it), ``/readyz``
(the bus and the database really answer), ``/metrics`` (Prometheus), and the one error shape
of every API: RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Body, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from switchboard.runtime.errors import SwitchboardRuntimeError

ReadinessCheck = Callable[[], Awaitable[bool]]
M = TypeVar("M", bound=BaseModel)

PROBLEM_JSON = "application/problem+json"
# A problem's ``type`` is this prefix and its machine code (``code`` repeats it): a stable
# identifier clients can switch on, naming no website.
PROBLEM_TYPE = "urn:switchboard:problem:"
_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "code", "errors"})


class FieldError(BaseModel):
    """One thing wrong with the request: where, and what."""

    path: str = Field(description="where: `body.content.text`, `query.limit`, `path.id`, ...")
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details) with Switchboard's members ``code`` and,
    for invalid input, ``errors``; some errors add members of their own (e.g. retry_after_s).
    """

    type: str = Field(description=f"`{PROBLEM_TYPE}<code>`")
    title: str = Field(description="the HTTP status phrase")
    status: int
    detail: str = Field(description="what went wrong, for a person")
    instance: str = Field(description="the request path")
    code: str = Field(description="machine code, stable; the suffix of `type`")
    errors: list[FieldError] | None = Field(None, description="every invalid field")


def problem_body(
    status: int,
    code: str,
    detail: str,
    /,
    *,
    instance: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """The members of a problem document; ``extensions`` may not reuse a standard name."""
    clash = _RESERVED & extensions.keys()
    if clash:
        raise ValueError(f"problem extension members reuse reserved names: {sorted(clash)}")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body["code"] = code
    if errors is not None:
        body["errors"] = [dict(e) for e in errors]
    body.update(extensions)
    return body


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ProblemResponse(JSONResponse):
    """A problem document; its ``instance`` is the request path when the caller gave none
    (filled in as it is sent, so helpers without the request can build one)."""

    media_type = PROBLEM_JSON

    def __init__(
        self, body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
    ) -> None:
        self.problem = body
        super().__init__(body, status, dict(headers or {}))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "instance" not in self.problem and scope.get("path"):
            self.problem = with_instance(self.problem, scope["path"])
            self.body = self.render(self.problem)
            self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


def with_instance(problem: dict[str, Any], path: str) -> dict[str, Any]:
    """``problem`` with ``instance`` set to ``path``, placed after the standard members."""
    if "instance" in problem:
        return problem
    keys = list(problem)
    at = keys.index("detail") + 1 if "detail" in keys else len(keys)
    items = list(problem.items())
    return dict([*items[:at], ("instance", path), *items[at:]])


def error(
    status: int,
    code: str,
    message: str,
    /,
    headers: Mapping[str, str] | None = None,
    *,
    errors: Sequence[Mapping[str, str]] | None = None,
    instance: str | None = None,
    **details: Any,
) -> ProblemResponse:
    """The one error answer of every API: a problem document with ``code`` (also the suffix
    of ``type``), ``message`` as its ``detail``, and ``details`` as extension members."""
    body = problem_body(status, code, message, instance=instance, errors=errors, **details)
    return ProblemResponse(body, status, headers)


# The fields our discriminated unions are told apart by (content ``kind``, keyboard and step
# ``type``): pydantic names the chosen member in an error's location.
UNION_TAGS = ("kind", "type")


def without_tags(data: Any, loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """``loc`` without the members of discriminated unions pydantic puts in it: they are not
    in the input (``body.content.text.text`` is the field ``body.content.text``), so walk
    ``data``, the validated input, and drop a part that names its node's tag."""
    out: list[int | str] = []
    node = data
    skipped = False
    for part in loc:
        if (
            isinstance(node, Mapping)
            and not skipped
            and any(node.get(tag) == part for tag in UNION_TAGS)
        ):
            skipped = True
            continue
        skipped = False
        out.append(part)
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list | tuple) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def field_errors(
    details: Iterable[Mapping[str, Any]], prefix: str = "", data: Any = None
) -> list[dict[str, str]]:
    """``errors`` members from pydantic's error details (``loc`` and ``msg`` only: never the
    library's documentation links or the input, which may hold secrets); with ``data``, the
    input the locations are in, without the union tags pydantic adds (``without_tags``)."""
    found: list[dict[str, str]] = []
    for e in details:
        where = e.get("loc", ())
        if data is not None:
            where = without_tags(data, where)
        loc = [str(p) for p in where]
        path = ".".join([prefix, *loc] if prefix else loc) or prefix or "request"
        found.append({"path": path, "message": str(e.get("msg", "invalid"))})
    return found


def invalid(
    exc: ValidationError | Sequence[Mapping[str, Any]],
    code: str = "invalid_request",
    prefix: str = "body",
    status: int = 422,
    limit: int = 20,
    data: Any = None,
) -> ProblemResponse:
    """A 422 problem naming every invalid field of a pydantic validation (``prefix``: where
    the validated value came from, e.g. ``body``; ``data``: that value, so the paths are
    the input's own)."""
    details = exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc
    problems = field_errors(list(details)[:limit], prefix, data)
    if not problems:
        problems = [{"path": prefix or "request", "message": "invalid"}]
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return error(status, code, f"{first['path']}: {first['message']}{more}", errors=problems)


class ProblemError(SwitchboardRuntimeError):
    """An error answer raised from a handler, a helper or a dependency: the service app
    answers ``response`` as it is (so helpers deep in a route need not return it up)."""

    def __init__(self, response: ProblemResponse) -> None:
        super().__init__(str(response.problem.get("detail", "")))
        self.response = response


def json_body(model: type[M], code: str, *, path_fields: Sequence[str] = ()) -> Any:
    """A route dependency: the JSON body validated as ``model`` (with ``path_fields`` taken
    from the path, which win over the body), or a 422 naming every invalid field under the
    route's own ``code``; e.g. ``new: Annotated[NewPost, json_body(NewPost, "invalid_post")]``.
    """

    async def parse(request: Request, body: Annotated[dict[str, Any], Body()]) -> M:
        data = {**body, **{name: request.path_params[name] for name in path_fields}}
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ProblemError(invalid(exc, code, data=data)) from None

    return Depends(parse)


def document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document whose error answers (4xx, 5xx) are all ``application/problem+json``
    with the ``Problem`` schema; every operation also documents 422 and 500."""
    doc = copy.deepcopy(openapi)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["FieldError"] = FieldError.model_json_schema()
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem.pop("$defs", None)
    schemas["Problem"] = problem
    ref = {"$ref": "#/components/schemas/Problem"}
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            responses.setdefault("422", {"description": "Invalid request"})
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                responses.setdefault("415", {"description": "the body was not sent as JSON"})
            responses.setdefault("500", {"description": "Internal error (a bug; see the logs)"})
            for status, answer in responses.items():
                if status[:1] in ("4", "5"):
                    answer["content"] = {PROBLEM_JSON: {"schema": ref}}
                    if answer.get("description") == "Validation Error":
                        answer["description"] = "Invalid request: `errors` names every field"
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in orjson.dumps(doc).decode():
            schemas.pop(unused, None)
    return doc


class Health:
    """Named readiness checks; ``/readyz`` is 200 only when all of them pass. Liveness
    checks (cheap, synchronous) say whether the process can ever work again; ``/healthz``
    is 503 when one fails."""

    def __init__(self) -> None:
        self.checks: dict[str, ReadinessCheck] = {}
        self.liveness: dict[str, Callable[[], bool]] = {}
        self.shutting_down = False

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def add_liveness(self, name: str, alive: Callable[[], bool]) -> None:
        self.liveness[name] = alive

    def dead(self) -> list[str]:
        """The names of the failing liveness checks."""
        return [name for name, alive in self.liveness.items() if not alive()]

    async def results(self) -> dict[str, bool]:
        async def run(check: ReadinessCheck) -> bool:
            try:
                async with asyncio.timeout(3.0):
                    return await check()
            except Exception:
                return False

        values = await asyncio.gather(*(run(c) for c in self.checks.values()))
        return dict(zip(self.checks, values, strict=True))

    def routes(self) -> list[Route]:
        async def healthz(_: Request) -> Response:
            dead = self.dead()
            if dead:
                return JSONResponse({"status": "dead", "failed": dead}, 503)
            return JSONResponse({"status": "ok"})

        async def readyz(_: Request) -> Response:
            results = await self.results()
            ready = all(results.values()) and not self.shutting_down
            body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": results}
            if self.shutting_down:
                body["shutting_down"] = True
            return JSONResponse(body, 200 if ready else 503)

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        return [
            Route("/healthz", healthz, include_in_schema=False),
            Route("/readyz", readyz, include_in_schema=False),
            Route("/metrics", metrics, include_in_schema=False),
        ]
