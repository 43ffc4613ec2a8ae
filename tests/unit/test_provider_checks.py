"""A credential check that lacks what its provider call needs names every missing field and
calls nobody (the call-level answers are tests/integration/test_account_checks.py's)."""

from __future__ import annotations

import httpx
import pytest

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account
from switchboard.runtime.provider_checks import Endpoints, check_account


def _no_call(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the check called {request.url} without its credentials")


@pytest.mark.parametrize(
    ("channel", "secrets", "settings", "missing"),
    [
        (Channel.TELEGRAM, {}, {}, ["secrets.token"]),
        (Channel.VIBER, {}, {}, ["secrets.token"]),
        (
            Channel.WHATSAPP,
            {"access_token": "wa-token"},
            {},
            ["secrets.app_secret", "settings.phone_number_id"],
        ),
        (
            Channel.GENERIC,
            {},
            {"provider": "sendpulse"},
            ["secrets.client_id", "secrets.client_secret"],
        ),
        (
            Channel.GENERIC,
            {"client_id": "sp-id"},
            {"provider": "sendpulse"},
            ["secrets.client_secret"],
        ),
    ],
    ids=["telegram", "viber", "whatsapp", "sendpulse", "sendpulse-secret"],
)
async def test_missing_credentials_are_each_named_and_nothing_is_called(
    channel: Channel, secrets: dict[str, str], settings: dict[str, str], missing: list[str]
) -> None:
    account = Account(channel=channel, id="acc1", secrets=secrets, settings=settings)
    async with httpx.AsyncClient(transport=httpx.MockTransport(_no_call)) as http:
        report = await check_account(http, Endpoints(), account)
    assert report.problems == [{"path": path, "message": "required"} for path in missing]
