"""Control endpoints of the SendPulse fake, under `/_sandbox/sendpulse/`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from switchboard.sandbox.httpjson import ControlError, listing, named, read_json
from switchboard.sandbox.routes import RouteTable, limits_routes, route_table, settings_routes
from switchboard.sandbox.sendpulse.state import SpAccount, SpAddressBook

if TYPE_CHECKING:
    from switchboard.sandbox.sendpulse.provider import SendPulseProvider


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    return None if value is None else int(value)


def control_routes(provider: SendPulseProvider) -> list[BaseRoute]:
    """Routes to configure accounts and address books, read what was sent, tune limits."""
    state = provider.state

    def account_of(request: Request) -> SpAccount:
        return named(request, "account", state.find_account)

    def account_json(account: SpAccount) -> dict[str, Any]:
        books = [b.summary() for b in state.books.values() if b.owner == account.client_id]
        tokens = sum(1 for t in state.tokens.values() if t.client_id == account.client_id)
        return {**account.summary(), "address_books": books, "tokens": tokens}

    def book_json(book: SpAddressBook) -> dict[str, Any]:
        return {**book.summary(), "contacts": [c.to_json() for c in book.contacts.values()]}

    async def list_accounts(request: Request) -> Response:
        return JSONResponse({"accounts": [account_json(a) for a in state.accounts.values()]})

    async def add_account(request: Request) -> Response:
        data = await read_json(request)
        if not data.get("client_id") or not data.get("client_secret"):
            raise ControlError("client_id and client_secret are required")
        account = provider.add_account(
            str(data["client_id"]), str(data["client_secret"]), _optional_int(data, "token_ttl")
        )
        for book in data.get("address_books") or []:
            provider.add_address_book(account, book.get("name"), _optional_int(book, "id"))
        return JSONResponse(account_json(account), status_code=201)

    async def get_account(request: Request) -> Response:
        return JSONResponse(account_json(account_of(request)))

    async def delete_account(request: Request) -> Response:
        state.remove_account(account_of(request))
        return JSONResponse({"deleted": True})

    async def issue_token(request: Request) -> Response:
        token = state.issue_token(account_of(request))
        ttl = state.ttl_of(state.accounts[token.client_id])
        return JSONResponse({"access_token": token.value, "expires_in": ttl}, status_code=201)

    async def expire_tokens(request: Request) -> Response:
        return JSONResponse({"expired": state.expire_tokens(account_of(request))})

    async def list_books(request: Request) -> Response:
        account = account_of(request)
        books = [b.summary() for b in state.books.values() if b.owner == account.client_id]
        return JSONResponse({"address_books": books})

    async def add_book(request: Request) -> Response:
        data = await read_json(request)
        book = provider.add_address_book(
            account_of(request), data.get("name"), _optional_int(data, "id")
        )
        return JSONResponse(book.summary(), status_code=201)

    async def get_book(request: Request) -> Response:
        book = state.books.get(int(request.path_params["book"]))
        if book is None:
            raise ControlError("no such address book", 404)
        return JSONResponse(book_json(book))

    async def emails(request: Request) -> Response:
        account = request.query_params.get("account")
        found = provider.emails(account_of(request) if account else None)
        return listing("emails", [e.to_json() for e in found])

    async def sms(request: Request) -> Response:
        account = request.query_params.get("account")
        found = provider.sms(account_of(request) if account else None)
        return listing("sms", [s.to_json() for s in found])

    async def clear_sent(request: Request) -> Response:
        state.emails.clear()
        state.sms.clear()
        return JSONResponse({"cleared": True})

    table: RouteTable = [
        ("/accounts", list_accounts, ["GET"]),
        ("/accounts", add_account, ["POST"]),
        ("/accounts/{account}", get_account, ["GET"]),
        ("/accounts/{account}", delete_account, ["DELETE"]),
        ("/accounts/{account}/tokens", issue_token, ["POST"]),
        ("/accounts/{account}/tokens", expire_tokens, ["DELETE"]),
        ("/accounts/{account}/addressbooks", list_books, ["GET"]),
        ("/accounts/{account}/addressbooks", add_book, ["POST"]),
        ("/addressbooks/{book}", get_book, ["GET"]),
        ("/emails", emails, ["GET"]),
        ("/sms", sms, ["GET"]),
        ("/sent", clear_sent, ["DELETE"]),
        *limits_routes(lambda: provider.config.limits, state.limiter),
        *settings_routes(provider.config, state.limiter),
    ]
    return route_table(table)
