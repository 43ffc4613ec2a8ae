"""Helpers of the SendPulse tests: a served fake on a manual clock, an authenticated client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from switchboard.sandbox import ManualClock, Sandbox, SandboxConfig
from switchboard.sandbox.sendpulse import SpAccount
from switchboard.sandbox.testing import serve_provider

CLIENT_ID = "a1b2c3d4e5f6"
CLIENT_SECRET = "s3cr3t-value"
BOOK_ID = 42


def html64(markup: str) -> str:
    return base64.b64encode(markup.encode("utf-8")).decode("ascii")


@dataclass
class SendPulseEnv:
    """A served SendPulse fake (alone, at root) whose clock only moves when told."""

    sandbox: Sandbox
    http: httpx.AsyncClient
    clock: ManualClock
    account: SpAccount

    async def request_token(
        self,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        *,
        form: bool = False,
    ) -> httpx.Response:
        """The OAuth client-credentials request, as JSON or form-encoded (as the SDK sends it)."""
        body = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if form:
            return await self.http.post("/oauth/access_token", data=body)
        return await self.http.post("/oauth/access_token", json=body)

    async def token(self) -> str:
        response = await self.request_token()
        assert response.status_code == 200, response.text
        value: str = response.json()["access_token"]
        return value

    async def call(
        self, method: str, path: str, token: str | None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def add_emails(self, token: str, emails: Any, book: int = BOOK_ID) -> httpx.Response:
        """POST /addressbooks/{book}/emails with `emails` (a list, or the SDK's JSON string)."""
        return await self.call(
            "POST", f"/addressbooks/{book}/emails", token, json={"emails": emails}
        )


@asynccontextmanager
async def sendpulse_env(config: SandboxConfig | None = None) -> AsyncIterator[SendPulseEnv]:
    clock = ManualClock()
    box = Sandbox(config or SandboxConfig(), clock=clock)
    account = box.sendpulse.add_account(CLIENT_ID, CLIENT_SECRET)
    box.sendpulse.add_address_book(account, "Leads", BOOK_ID)
    async with serve_provider(box, "sendpulse") as (_url, http):
        yield SendPulseEnv(box, http, clock, account)
