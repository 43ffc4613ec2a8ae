"""The validate-or-422 body dependency: a route's body as its model, or a problem naming
every invalid field under the route's own code; path fields win over the body's."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from switchboard.runtime.http import ProblemError, json_body


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: str
    size: int = Field(ge=1)


def app() -> FastAPI:
    api = FastAPI()

    @api.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> Response:
        return exc.response

    @api.post("/c/{campaign_id}")
    async def add(
        batch: Annotated[Batch, json_body(Batch, "invalid_batch", path_fields=("campaign_id",))],
    ) -> Response:
        return JSONResponse(batch.model_dump())

    return api


async def call(body: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/c/from-path", json=body)


async def test_a_valid_body_arrives_as_the_model_with_the_path_field() -> None:
    r = await call({"size": 3, "campaign_id": "from-body"})
    assert r.status_code == 200, r.text
    assert r.json() == {"campaign_id": "from-path", "size": 3}


async def test_an_invalid_body_is_a_422_naming_every_field_with_the_routes_code() -> None:
    r = await call({"size": 0, "extra": 1})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "invalid_batch"
    assert sorted(e["path"] for e in problem["errors"]) == ["body.extra", "body.size"]
