"""SendPulse fake over real HTTP: OAuth tokens and expiry, address books, SMTP and SMS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from switchboard.sandbox import SandboxConfig
from switchboard.sandbox.sendpulse import SendPulseConfig

from .sendpulse_support import (
    BOOK_ID,
    CLIENT_ID,
    SendPulseEnv,
    html64,
    sendpulse_env,
)

INVALID_CLIENT = {
    "error": "invalid_client",
    "error_description": "Client authentication failed.",
    "message": "Client authentication failed.",
}


@pytest.fixture
async def sp() -> AsyncIterator[SendPulseEnv]:
    config = SandboxConfig(sendpulse=SendPulseConfig(token_ttl=60))
    async with sendpulse_env(config) as env:
        yield env


# -- OAuth ------------------------------------------------------------------------------


async def test_client_credentials_give_a_bearer_token(sp: SendPulseEnv) -> None:
    response = await sp.request_token()
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    assert len(body["access_token"]) >= 32


async def test_token_request_may_be_form_encoded_like_the_sdk(sp: SendPulseEnv) -> None:
    response = await sp.request_token(form=True)
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("client_id", "secret"), [(CLIENT_ID, "wrong"), ("nobody", "s3cr3t-value")]
)
async def test_bad_credentials_are_401_invalid_client(
    sp: SendPulseEnv, client_id: str, secret: str
) -> None:
    response = await sp.request_token(client_id, secret)
    assert response.status_code == 401
    assert response.json() == INVALID_CLIENT
    record = sp.sandbox.recorder.requests(provider="sendpulse")[-1]
    assert (record.method, record.status, record.params["client_secret"]) == (
        "access_token",
        401,
        "***",
    )


async def test_other_grant_types_are_refused(sp: SendPulseEnv) -> None:
    response = await sp.http.post(
        "/oauth/access_token", json={"grant_type": "password", "client_id": CLIENT_ID}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_token_expires_on_the_sandbox_clock_then_a_fresh_one_works(
    sp: SendPulseEnv,
) -> None:
    token = await sp.token()
    path = f"/addressbooks/{BOOK_ID}/emails"
    assert (await sp.call("GET", path, token)).status_code == 200
    sp.clock.advance(59)
    assert (await sp.call("GET", path, token)).status_code == 200
    sp.clock.advance(1)
    expired = await sp.call("GET", path, token)
    assert expired.status_code == 401
    assert expired.json()["error"] == "access_denied"
    assert expired.json()["hint"] == "Access token has expired"
    fresh = await sp.token()
    assert fresh != token
    assert (await sp.call("GET", path, fresh)).status_code == 200


async def test_missing_and_unknown_tokens_are_401(sp: SendPulseEnv) -> None:
    path = f"/addressbooks/{BOOK_ID}/emails"
    missing = await sp.call("GET", path, None)
    assert missing.status_code == 401
    assert missing.json()["hint"] == 'Missing "Authorization" header'
    unknown = await sp.call("GET", path, "not-a-token")
    assert unknown.status_code == 401
    assert set(unknown.json()) == {"error", "error_description", "hint", "message"}


async def test_refresh_once_and_retry_pattern(sp: SendPulseEnv) -> None:
    """A client that refreshes on 401 and retries once gets through after expiry."""
    token = await sp.token()
    sp.clock.advance(3600)
    emails = [{"email": "late@example.com"}]
    first = await sp.add_emails(token, emails)
    assert first.status_code == 401
    token = await sp.token()
    retry = await sp.add_emails(token, emails)
    assert retry.json() == {"result": True}


# -- address books ----------------------------------------------------------------------


async def test_add_emails_accepts_a_json_list(sp: SendPulseEnv) -> None:
    token = await sp.token()
    response = await sp.add_emails(
        token, [{"email": "Ann@Example.com", "variables": {"name": "Ann"}}]
    )
    assert response.status_code == 200
    assert response.json() == {"result": True}
    assert sp.sandbox.sendpulse.contacts(BOOK_ID) == [
        {
            "email": "ann@example.com",
            "status": 0,
            "status_explain": "New",
            "variables": {"name": "Ann"},
        }
    ]


async def test_add_emails_accepts_the_sdk_json_string_forms(sp: SendPulseEnv) -> None:
    token = await sp.token()
    emails = json.dumps([{"email": "bob@example.com", "variables": {"city": "Kyiv"}}])
    as_json = await sp.add_emails(token, emails)
    assert as_json.json() == {"result": True}
    emails = json.dumps([{"email": "cid@example.com", "variables": {}}])
    as_form = await sp.call(
        "POST", f"/addressbooks/{BOOK_ID}/emails", token, data={"emails": emails}
    )
    assert as_form.json() == {"result": True}
    listed = await sp.call("GET", f"/addressbooks/{BOOK_ID}/emails", token)
    assert [c["email"] for c in listed.json()] == ["bob@example.com", "cid@example.com"]
    assert listed.json()[0]["variables"] == {"city": "Kyiv"}


async def test_adding_again_updates_variables(sp: SendPulseEnv) -> None:
    token = await sp.token()
    await sp.add_emails(token, [{"email": "a@ex.com", "variables": {"x": 1}}])
    await sp.add_emails(token, [{"email": "a@ex.com", "variables": {"y": 2}}])
    assert sp.sandbox.sendpulse.contacts(BOOK_ID)[0]["variables"] == {"x": 1, "y": 2}


async def test_invalid_email_rejects_the_whole_request_naming_it(sp: SendPulseEnv) -> None:
    token = await sp.token()
    response = await sp.add_emails(token, [{"email": "ok@example.com"}, {"email": "not-an-email"}])
    assert response.status_code == 400
    body = response.json()
    assert body["is_error"] is True
    assert "not-an-email" in body["message"]
    assert sp.sandbox.sendpulse.contacts(BOOK_ID) == []


async def test_empty_email_list_is_no_data(sp: SendPulseEnv) -> None:
    token = await sp.token()
    response = await sp.add_emails(token, [])
    assert response.status_code == 400
    assert response.json()["error_code"] == 8


async def test_unknown_or_foreign_address_book_is_book_not_found(sp: SendPulseEnv) -> None:
    other = sp.sandbox.sendpulse.add_account("other-id", "other-secret")
    foreign = sp.sandbox.sendpulse.add_address_book(other, "Theirs")
    token = await sp.token()
    for book in (999, foreign.id):
        response = await sp.add_emails(token, [{"email": "x@example.com"}], book)
        assert response.status_code == 400
        assert response.json() == {"is_error": True, "error_code": 213, "message": "Book not found"}


# -- SMTP -------------------------------------------------------------------------------


def smtp_email(**overrides: object) -> dict[str, object]:
    email: dict[str, object] = {
        "html": html64("<h1>Привіт</h1>"),
        "text": "Hi",
        "subject": "Welcome",
        "from": {"name": "Shop", "email": "shop@example.com"},
        "to": [{"name": "Ann", "email": "ann@example.com"}],
    }
    email.update(overrides)
    return email


async def test_smtp_email_is_sent_and_recorded_with_decoded_html(sp: SendPulseEnv) -> None:
    token = await sp.token()
    response = await sp.call("POST", "/smtp/emails", token, json={"email": smtp_email()})
    assert response.status_code == 200
    body = response.json()
    assert body["result"] is True
    assert isinstance(body["id"], str)
    assert body["id"]
    [sent] = sp.sandbox.sendpulse.emails(CLIENT_ID)
    assert (sent.id, sent.subject, sent.html) == (body["id"], "Welcome", "<h1>Привіт</h1>")
    assert sent.to == [{"name": "Ann", "email": "ann@example.com"}]


async def test_smtp_email_as_sdk_form_with_json_string(sp: SendPulseEnv) -> None:
    token = await sp.token()
    form = {"email": json.dumps(smtp_email())}
    response = await sp.call("POST", "/smtp/emails", token, data=form)
    assert response.json()["result"] is True
    assert len(sp.sandbox.sendpulse.emails()) == 1


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"html": "<b>not base64</b>", "text": None}, "base64"),
        ({"subject": ""}, "subject"),
        ({"from": {"name": "x"}}, "Sender email"),
        ({"to": []}, "recipients"),
        ({"to": [{"email": "bad@"}]}, "bad@"),
        ({"html": None, "text": None}, "Empty email message content"),
    ],
)
async def test_smtp_validation(sp: SendPulseEnv, overrides: dict[str, object], needle: str) -> None:
    token = await sp.token()
    response = await sp.call("POST", "/smtp/emails", token, json={"email": smtp_email(**overrides)})
    assert response.status_code == 400
    assert needle in response.json()["message"]
    assert sp.sandbox.sendpulse.emails() == []


# -- SMS --------------------------------------------------------------------------------


async def test_sms_send_answers_counters_and_records(sp: SendPulseEnv) -> None:
    token = await sp.token()
    response = await sp.call(
        "POST",
        "/sms/send",
        token,
        json={
            "sender": "Shop",
            "phones": ["380931234567", "+380931234568", "380931234567"],
            "body": "Your code 1234",
            "transliterate": False,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["result"] is True
    assert body["counters"] == {"exceptions": 0, "sends": 2}
    [sms] = sp.sandbox.sendpulse.sms()
    assert sms.phones == ["380931234567", "380931234568"]
    assert (sms.sender, sms.body, sms.campaign_id) == (
        "Shop",
        "Your code 1234",
        body["campaign_id"],
    )


async def test_sms_as_sdk_form(sp: SendPulseEnv) -> None:
    token = await sp.token()
    form = {
        "sender": "Shop",
        "phones": json.dumps(["380931234567"]),
        "body": "hi",
        "transliterate": "False",
    }
    response = await sp.call("POST", "/sms/send", token, data=form)
    assert response.json()["counters"]["sends"] == 1
    assert sp.sandbox.sendpulse.sms()[0].transliterate is False


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"phones": ["12ab"]}, "12ab"),
        ({"phones": ["0931234567"]}, "0931234567"),
        ({"phones": []}, "phones"),
        ({"sender": ""}, "sender"),
        ({"sender": "A very long sender"}, "sender"),
        ({"body": ""}, "SMS text"),
    ],
)
async def test_sms_validation(sp: SendPulseEnv, payload: dict[str, object], needle: str) -> None:
    token = await sp.token()
    body = {"sender": "Shop", "phones": ["380931234567"], "body": "hi", **payload}
    response = await sp.call("POST", "/sms/send", token, json=body)
    assert response.status_code == 400
    assert needle in response.json()["message"]
    assert sp.sandbox.sendpulse.sms() == []
