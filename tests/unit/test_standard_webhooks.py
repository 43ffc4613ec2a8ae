"""Standard Webhooks verification with the current ``standardwebhooks`` (1.3): headers the
spec allows are accepted, and a body that is not UTF-8 is a 400 about the body, not a 401
about a "malformed header" (1.1 decoded the body before checking the signature)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from switchboard.events.catalog.common import Channel
from switchboard.ingest.webhooks import RejectedError, verify_generic
from switchboard.runtime.accounts import Account

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
ACCOUNT = Account(channel=Channel.GENERIC, id="erp", secrets={"signing_secret": SECRET})
BODY = b'{"type":"message.received","data":{}}'


def headers(body: bytes, signature: str | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    now = datetime.now(UTC)
    good = Webhook(SECRET).sign(msg_id, now, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": (signature or "{good}").format(good=good),
        "content-type": "application/json",
    }


@pytest.mark.parametrize(
    "signature",
    [
        "{good}",
        "v1,bm90LXRoZS1zaWc= {good}",  # a rotated secret's signature first
        "v1a,c29tZS1mdXR1cmUtc2NoZW1l {good}",  # a future asymmetric scheme beside v1
        "v2,abc,def {good}",  # an entry 1.1 could not split
        "v1,%%%not-base64%%% {good}",  # an entry 1.1 could not decode
    ],
)
def test_signature_lists_the_spec_allows_are_accepted(signature: str) -> None:
    assert (
        verify_generic(ACCOUNT, headers(BODY, signature), BODY, datetime.now(UTC)) == "wh:erp:msg_1"
    )


def test_a_body_that_is_not_utf8_is_a_400_about_the_body() -> None:
    body = b'{"text":"\xff\xfe"}'
    with pytest.raises(RejectedError) as caught:
        verify_generic(ACCOUNT, headers(body), body, datetime.now(UTC))
    assert (caught.value.status, caught.value.code) == (400, "malformed_body")
    assert "UTF-8" in caught.value.message


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("v1,bm90LXRoZS1zaWc=", "No matching signature found"),
        ("v1 nocomma", "No matching signature found"),
    ],
)
def test_wrong_signatures_are_401_naming_why(signature: str, reason: str) -> None:
    with pytest.raises(RejectedError) as caught:
        verify_generic(ACCOUNT, headers(BODY, signature), BODY, datetime.now(UTC))
    assert caught.value.status == 401
    assert caught.value.message == f"Standard Webhooks: {reason}"


def test_an_unsigned_non_utf8_body_is_still_401() -> None:
    body = b"\xff"
    bad = headers(body, "v1,bm90LXRoZS1zaWc=")
    with pytest.raises(RejectedError) as caught:
        verify_generic(ACCOUNT, bad, body, datetime.now(UTC))
    assert caught.value.status == 401


@pytest.mark.parametrize("secret", ["whsec_a", "whsec_%%%"])
def test_an_unusable_secret_is_a_configuration_error_not_a_bad_signature(secret: str) -> None:
    account = Account(channel=Channel.GENERIC, id="erp", secrets={"signing_secret": secret})
    with pytest.raises(RejectedError) as caught:
        verify_generic(account, headers(BODY), BODY, datetime.now(UTC))
    assert (caught.value.status, caught.value.code) == (401, "not_configured")
