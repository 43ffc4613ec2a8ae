"""A CRM service in-process on the test's NATS and Postgres, with a small API client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from switchboard.crm.app import create_app
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from tests.support.stack import API_KEY, service_env

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Crm:
    url: str
    http: httpx.AsyncClient
    nats_url: str
    postgres_url: str

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.http.get(f"{self.url}{path}", headers=AUTH, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def post(self, path: str, body: Any, auth: dict[str, str] = AUTH) -> httpx.Response:
        return await self.http.post(f"{self.url}{path}", headers=auth, json=body)

    async def until(self, path: str, check: Any, **params: Any) -> Any:
        """``GET path`` until ``check`` accepts the body (projections are asynchronous)."""

        async def probe() -> Any:
            body = await self.get(path, **params)
            # An AssertionError carries the last body into eventually's failure message, so a
            # timeout says what the API showed instead of "None".
            if not check(body):
                raise AssertionError(f"last body: {body!r}")
            return body

        return await eventually(probe, timeout=20, message=f"{path} {params}")


@contextlib.asynccontextmanager
async def running_crm(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Crm]:
    for key, value in service_env(nats_url, postgres_url).items():
        monkeypatch.setenv(key, value)
    async with (
        serve_app(create_app(load_settings(CrmSettings))) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Crm(url, http, nats_url, postgres_url)
