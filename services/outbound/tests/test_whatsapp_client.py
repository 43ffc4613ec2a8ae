"""WhatsAppClient against a MockTransport: Cloud API bodies, the upload, interactive
messages and the error table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from switchboard.events.catalog.outbound import OutLocation, OutMediaGroup, OutTemplate
from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.files import InMemoryFileIdCache
from switchboard.outbound.providers.whatsapp import WINDOW_REASON, WhatsAppClient

from .support import (
    WA_PHONE_ID,
    WA_TOKEN,
    Mock,
    account,
    assert_error,
    buttons,
    command,
    keyboard,
    media,
    reply,
    text,
)

ROOT = f"https://graph.facebook.com/v26.0/{WA_PHONE_ID}"
TO = "15551234567"


def accepted(wamid: str = "wamid.ABC", **extra: Any) -> httpx.Response:
    return reply(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": TO, "wa_id": TO}],
            "messages": [{"id": wamid, **extra}],
        },
    )


def wa(content: Any, **kwargs: Any) -> Any:
    return command(content, channel="whatsapp", recipient=TO, **kwargs)


async def send(mock: Mock, cmd: Any, shop: Any = None, **kwargs: Any) -> Any:
    async with mock.client() as http:
        return await WhatsAppClient(http, **kwargs).send(shop or account("whatsapp"), cmd)


async def fail(mock: Mock, cmd: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await send(mock, cmd)
    return caught.value


def envelope(**fields: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, **fields}


async def test_text_with_reply_context() -> None:
    mock = Mock([accepted()])
    sent = await send(mock, wa(text("hi https://x.test", preview_url=True), reply_to="wamid.IN"))
    request = mock.requests[0]
    assert (request.method, str(request.url)) == ("POST", f"{ROOT}/messages")
    assert request.headers["authorization"] == f"Bearer {WA_TOKEN}"
    assert mock.json() == envelope(
        type="text",
        text={"body": "hi https://x.test", "preview_url": True},
        context={"message_id": "wamid.IN"},
    )
    assert sent.provider_message_id == "wamid.ABC"
    assert sent.raw["wa_id"] == TO
    assert request.extensions["timeout"]["read"] == 10.0


async def test_account_settings_pick_version_and_base_url() -> None:
    mock = Mock([accepted()])
    shop = account(
        "whatsapp", settings={"graph_version": "v21.0", "api_base_url": "http://sb.test/whatsapp"}
    )
    await send(mock, wa(text()), shop)
    assert str(mock.requests[0].url) == f"http://sb.test/whatsapp/v21.0/{WA_PHONE_ID}/messages"


async def test_template() -> None:
    components = ({"type": "body", "parameters": [{"type": "text", "text": "Olena"}]},)
    mock = Mock([accepted(message_status="accepted")])
    sent = await send(
        mock, wa(OutTemplate(name="order_update", language="uk", components=components))
    )
    assert mock.json() == envelope(
        type="template",
        template={
            "name": "order_update",
            "language": {"code": "uk"},
            "components": list(components),
        },
    )
    assert sent.raw["message_status"] == "accepted"


@pytest.mark.parametrize(
    ("item", "kind", "payload"),
    [
        (media("photo", file_id="123", caption="c"), "image", {"id": "123", "caption": "c"}),
        (
            media("video", url="https://cdn.test/v.mp4", caption="c"),
            "video",
            {"link": "https://cdn.test/v.mp4", "caption": "c"},
        ),
        (media("audio", file_id="9", caption="dropped"), "audio", {"id": "9"}),
        (media("voice", url="https://cdn.test/v.ogg"), "audio", {"link": "https://cdn.test/v.ogg"}),
        (
            media("document", file_id="8", file_name="r.pdf", caption="r"),
            "document",
            {"id": "8", "caption": "r", "filename": "r.pdf"},
        ),
        (
            media("animation", url="https://cdn.test/a.mp4"),
            "video",
            {"link": "https://cdn.test/a.mp4"},
        ),
        (media("sticker", file_id="7"), "sticker", {"id": "7"}),
    ],
)
async def test_media_by_id_or_link(item: Any, kind: str, payload: dict[str, Any]) -> None:
    mock = Mock([accepted()])
    await send(mock, wa(item))
    assert mock.json() == envelope(type=kind, **{kind: payload})


async def test_bytes_are_uploaded_once_then_sent_by_id() -> None:
    cache = InMemoryFileIdCache()
    mock = Mock([reply(200, {"id": "media-1"}), accepted("wamid.1"), accepted("wamid.2")])
    cmd = wa(media("photo", data=b"\xff\xd8jpeg", caption="pic"))
    async with mock.client() as http:
        client = WhatsAppClient(http, file_ids=cache)
        await client.send(account("whatsapp"), cmd)
        await client.send(account("whatsapp"), cmd)
    upload = mock.requests[0]
    assert str(upload.url) == f"{ROOT}/media"
    assert upload.headers["authorization"] == f"Bearer {WA_TOKEN}"
    fields, files = mock.form(0)
    assert fields == {"messaging_product": "whatsapp", "type": "image/jpeg"}
    assert files["file"][1:] == ("image/jpeg", b"\xff\xd8jpeg")
    assert mock.json(1)["image"] == {"id": "media-1", "caption": "pic"}
    assert mock.json(2)["image"] == {"id": "media-1", "caption": "pic"}
    assert len(mock.requests) == 3


async def test_bytes_that_are_not_base64_are_permanent_without_a_call() -> None:
    bad = media("photo", data=b"x")
    bad = bad.model_copy(update={"source": bad.source.model_copy(update={"data_base64": "%%%"})})
    mock = Mock()
    assert_error(await fail(mock, wa(bad)), Failure.PERMANENT, "whatsapp_bad_media")
    assert mock.requests == []


async def test_a_failed_upload_is_classified_and_sends_nothing() -> None:
    mock = Mock([reply(500, {"error": {"message": "x", "code": 1, "type": "OAuthException"}})])
    error = await fail(mock, wa(media("document", data=b"%PDF", file_name="a.pdf")))
    assert_error(error, Failure.RETRYABLE, "whatsapp_1")
    assert error.raw["stage"] == "upload"
    assert len(mock.requests) == 1


async def test_location() -> None:
    mock = Mock([accepted()])
    await send(mock, wa(OutLocation(latitude=1.5, longitude=-2.25)))
    assert mock.json() == envelope(type="location", location={"latitude": 1.5, "longitude": -2.25})


async def test_up_to_three_buttons_are_reply_buttons() -> None:
    mock = Mock([accepted()])
    kb = keyboard(
        [("Yes", "yes", None), ("A very long answer text", None, None)], [("No", "no", None)]
    )
    await send(mock, wa(text("Confirm?"), keyboard=kb, reply_to="wamid.Q"))
    assert mock.json() == envelope(
        type="interactive",
        interactive={
            "type": "button",
            "body": {"text": "Confirm?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {
                        "type": "reply",
                        "reply": {
                            "id": "A very long answer text",
                            "title": "A very long answer\u2026",
                        },
                    },
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                ]
            },
        },
        context={"message_id": "wamid.Q"},
    )


async def test_four_to_ten_buttons_are_a_list() -> None:
    mock = Mock([accepted()])
    await send(mock, wa(text("Pick"), keyboard=buttons(5)))
    interactive = mock.json()["interactive"]
    assert interactive["type"] == "list"
    assert interactive["action"]["button"] == "Options"
    assert interactive["action"]["sections"] == [
        {"rows": [{"id": f"c{i}", "title": f"Choice {i}"} for i in range(5)]}
    ]


async def test_one_url_button_is_a_cta_url() -> None:
    mock = Mock([accepted()])
    await send(mock, wa(text("Track"), keyboard=keyboard([("Open", None, "https://t.test/1")])))
    assert mock.json()["interactive"] == {
        "type": "cta_url",
        "body": {"text": "Track"},
        "action": {
            "name": "cta_url",
            "parameters": {"display_text": "Open", "url": "https://t.test/1"},
        },
    }


async def test_media_with_buttons_uses_a_header() -> None:
    mock = Mock([accepted()])
    await send(
        mock,
        wa(media("photo", url="https://cdn.test/p.jpg", caption="Like it?"), keyboard=buttons(2)),
    )
    interactive = mock.json()["interactive"]
    assert interactive["header"] == {"type": "image", "image": {"link": "https://cdn.test/p.jpg"}}
    assert interactive["body"] == {"text": "Like it?"}


async def test_a_remove_keyboard_is_plain_text() -> None:
    mock = Mock([accepted()])
    await send(mock, wa(text("bye"), keyboard=keyboard(type="remove")))
    assert mock.json()["type"] == "text"


@pytest.mark.parametrize(
    "cmd",
    [
        wa(text("x"), keyboard=buttons(11)),
        wa(text("x"), keyboard=keyboard([("a", "a", None), ("b", None, "https://b.test")])),
        wa(media("photo", url="https://cdn.test/p.jpg"), keyboard=buttons(2)),
        wa(OutMediaGroup(items=(media("photo", file_id="1"), media("photo", file_id="2")))),
        wa(OutTemplate(name="t", language="en"), keyboard=buttons(1)),
    ],
    ids=["eleven-buttons", "mixed-url", "media-buttons-no-caption", "album", "template-keyboard"],
)
async def test_unsupported_shapes_fail_without_a_call(cmd: Any) -> None:
    mock = Mock()
    assert_error(await fail(mock, cmd), Failure.PERMANENT, "whatsapp_unsupported")
    assert mock.requests == []


def graph_error(
    status: int, code: int, message: str = "x", headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    return reply(
        status,
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "T",
                **extra,
            }
        },
        headers,
    )


@pytest.mark.parametrize(
    ("answer", "retry_after", "scope"),
    [
        (graph_error(429, 130429, "(#130429) Rate limit hit"), 1.0, Scope.ACCOUNT),
        (graph_error(400, 130429, headers={"Retry-After": "7"}), 7.0, Scope.ACCOUNT),
        (graph_error(400, 131056, "(#131056) pair rate limit hit"), 6.0, Scope.RECIPIENT),
        (graph_error(400, 80007), 60.0, Scope.ACCOUNT),
        (graph_error(429, 4, "(#4) Application request limit reached"), 60.0, Scope.ACCOUNT),
        (graph_error(400, 131048), 300.0, Scope.ACCOUNT),
    ],
)
async def test_rate_limits_wait_and_pause_the_number_or_the_recipient(
    answer: httpx.Response, retry_after: float, scope: Scope
) -> None:
    """Named after the Graph error code, whatever the HTTP status."""
    code = f"whatsapp_{answer.json()['error']['code']}"
    error = await fail(Mock([answer]), wa(text()))
    assert_error(error, Failure.RATE_LIMITED, code, retry_after=retry_after, scope=scope)


@pytest.mark.parametrize(
    ("answer", "failure", "code"),
    [
        (
            graph_error(500, 1, "An unknown error has occurred.", is_transient=True),
            Failure.RETRYABLE,
            "whatsapp_1",
        ),
        (graph_error(503, 2, "Service temporarily unavailable"), Failure.RETRYABLE, "whatsapp_2"),
        (graph_error(400, 131000, "Something went wrong"), Failure.RETRYABLE, "whatsapp_131000"),
        (httpx.Response(502, text="<html>bad gateway</html>"), Failure.RETRYABLE, "whatsapp_502"),
        (
            graph_error(400, 100, "(#100) The parameter text['body'] is required."),
            Failure.PERMANENT,
            "whatsapp_100",
        ),
        (
            graph_error(401, 190, "Invalid OAuth access token."),
            Failure.UNAUTHORIZED,
            "whatsapp_190",
        ),
        (graph_error(400, 131026, "Message undeliverable"), Failure.PERMANENT, "whatsapp_131026"),
        (httpx.Response(404, text="nope"), Failure.PERMANENT, "whatsapp_404"),
    ],
)
async def test_other_failures_are_retryable_or_permanent(
    answer: httpx.Response, failure: Failure, code: str
) -> None:
    assert_error(await fail(Mock([answer]), wa(text())), failure, code)


async def test_the_24h_window_is_a_clear_permanent_failure() -> None:
    answer = graph_error(
        400,
        131047,
        "(#131047) Re-engagement message",
        error_data={"messaging_product": "whatsapp", "details": "more than 24 hours have passed"},
    )
    error = await fail(Mock([answer]), wa(text()))
    assert_error(error, Failure.PERMANENT, "whatsapp_131047")
    assert error.reason == WINDOW_REASON
    assert error.raw["error"]["code"] == 131047


async def test_permanent_reason_carries_meta_details() -> None:
    answer = graph_error(
        400, 131026, "Message undeliverable", error_data={"details": "not on WhatsApp"}
    )
    error = await fail(Mock([answer]), wa(text()))
    assert error.reason == "Message undeliverable: not on WhatsApp"


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused")])
async def test_transport_errors_are_retryable(exc: Exception) -> None:
    error = await fail(Mock([exc]), wa(text()))
    assert error.failure is Failure.RETRYABLE
    assert WA_TOKEN not in str(error)


async def test_missing_settings_are_permanent() -> None:
    mock = Mock()
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await WhatsAppClient(http).send(
                account("whatsapp", settings={"phone_number_id": ""}), wa(text())
            )
    assert_error(caught.value, Failure.PERMANENT, "whatsapp_config")
