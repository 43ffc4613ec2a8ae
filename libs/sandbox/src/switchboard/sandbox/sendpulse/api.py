"""HTTP endpoints of the SendPulse fake, with the real paths of `api.sendpulse.com`.

Every API call goes through the same steps: bearer token (401), account limit (429),
parameters, then the method; each step fills the request note the recorder stores.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from switchboard.sandbox.provider import route_path
from switchboard.sandbox.recorder import note_of
from switchboard.sandbox.sendpulse import methods
from switchboard.sandbox.sendpulse.errors import (
    SendPulseError,
    error_response,
    invalid_client,
    invalid_request,
    unsupported_grant_type,
)
from switchboard.sandbox.sendpulse.params import read_params, summary
from switchboard.sandbox.sendpulse.state import SendPulseState, SpAccount

PROVIDER = "sendpulse"
_BOOK_EMAILS = re.compile(r"^/addressbooks/([^/]+)/emails/?$")
_FIXED = {
    "/oauth/access_token": "access_token",
    "/smtp/emails": "smtp_send_mail",
    "/sms/send": "sms_send",
}

Handler = Callable[[SpAccount, dict[str, Any], float], Any]


def method_of(scope: Scope) -> str | None:
    """The call's name (as the official SDK names it), read from the raw path."""
    path = route_path(scope).rstrip("/") or "/"
    if path in _FIXED:
        return _FIXED[path]
    if _BOOK_EMAILS.match(path):
        is_get = scope.get("method", "GET") == "GET"
        return "get_emails_from_addressbook" if is_get else "add_emails_to_addressbook"
    return None


def bearer_of(scope: Scope) -> str | None:
    """The token of the Authorization header, if it is a Bearer one."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class SendPulseApi:
    """Dispatches REST calls to `methods` and shapes their answers."""

    def __init__(self, state: SendPulseState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth/access_token", self.access_token, methods=["POST"]),
            Route("/addressbooks/{book_id}/emails", self.book_emails, methods=["GET", "POST"]),
            Route("/smtp/emails", self.smtp_emails, methods=["POST"]),
            Route("/sms/send", self.sms_send, methods=["POST"]),
        ]

    async def access_token(self, request: Request) -> Response:
        """`POST /oauth/access_token` with the client-credentials grant (JSON or form)."""
        note = note_of(request.scope, PROVIDER)
        try:
            params = await read_params(request)
            note.params = summary(params)
            if params.get("grant_type") != "client_credentials":
                raise unsupported_grant_type()
            client_id = params.get("client_id")
            if not isinstance(client_id, str) or not client_id:
                raise invalid_request("client_id")
            note.account = client_id
            account = self.state.accounts.get(client_id)
            if account is None or params.get("client_secret") != account.client_secret:
                raise invalid_client()
            token = self.state.issue_token(account)
        except SendPulseError as error:
            return self._fail(request, error)
        note.succeed()
        return JSONResponse(
            {
                "access_token": token.value,
                "token_type": "Bearer",
                "expires_in": self.state.ttl_of(account),
            }
        )

    async def book_emails(self, request: Request) -> Response:
        book_id = str(request.path_params["book_id"])
        if request.method == "GET":

            def read(account: SpAccount, params: dict[str, Any], at: float) -> Any:
                return methods.list_emails(self.state.book_of(account, book_id), params)

            return await self._call(request, read, chat=book_id)

        def add(account: SpAccount, params: dict[str, Any], at: float) -> Any:
            return methods.add_emails(self.state, account, book_id, params, at)

        return await self._call(request, add, chat=book_id)

    async def smtp_emails(self, request: Request) -> Response:
        return await self._call(
            request, lambda account, params, at: methods.smtp_send(self.state, account, params, at)
        )

    async def sms_send(self, request: Request) -> Response:
        return await self._call(
            request, lambda account, params, at: methods.sms_send(self.state, account, params, at)
        )

    async def _call(self, request: Request, handler: Handler, chat: str | None = None) -> Response:
        note = note_of(request.scope, PROVIDER)
        note.chat = chat
        clock = self.state.core.clock
        try:
            account = self.state.authenticate(request.headers.get("authorization"))
            note.account = account.client_id
            now = clock.monotonic()
            self.state.take_slot(account, now)
            note.accepted_at = now
            params = await read_params(request)
            note.params = summary(params)
            result = handler(account, params, clock.time())
        except SendPulseError as error:
            return self._fail(request, error)
        note.succeed()
        return JSONResponse(result)

    @staticmethod
    def _fail(request: Request, error: SendPulseError) -> Response:
        note_of(request.scope, PROVIDER).fail(error.code, error.message, error.retry_after)
        return error_response(error)
