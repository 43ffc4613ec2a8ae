"""WhatsApp Cloud API sends: auth, Graph-shaped errors, message types, the 24 h window."""

from __future__ import annotations

from typing import Any

import pytest

from .messaging_support import GRAPH, PHONE_ID, TEMPLATE, WA_TOKEN, whatsapp_env

USER = "15551234567"


def graph_error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "OAuthException"
    assert error["fbtrace_id"]
    return error


async def test_free_text_after_the_user_wrote_is_accepted() -> None:
    async with whatsapp_env() as env:
        await env.user_writes(USER)
        response = await env.send("+1 (555) 123-4567", body="Your order shipped")
        assert response.status_code == 200
        body = response.json()
        assert body["messaging_product"] == "whatsapp"
        assert body["contacts"] == [{"input": "+1 (555) 123-4567", "wa_id": USER}]
        [message] = body["messages"]
        assert message["id"].startswith("wamid.")
        assert "message_status" not in message
        [sent] = env.sandbox.whatsapp.sent_messages(PHONE_ID, to=USER)
        assert (sent["id"], sent["type"]) == (message["id"], "text")
        record = env.sandbox.recorder.requests(provider="whatsapp", ok=True)[-1]
        assert (record.account, record.method, record.chat) == (PHONE_ID, "messages", USER)


async def test_template_outside_the_window_passes_while_free_text_fails_with_131047() -> None:
    async with whatsapp_env() as env:
        template = await env.send(USER, "template", **TEMPLATE)
        assert template.status_code == 200
        assert template.json()["messages"][0]["message_status"] == "accepted"
        text = await env.send(USER, body="hello again")
        assert text.status_code == 400
        error = graph_error(text)
        assert error["code"] == 131047
        assert error["message"] == "(#131047) Re-engagement message"
        assert "24 hours" in error["error_data"]["details"]
        image = await env.send(USER, "image", link="https://example.com/a.jpg")
        assert graph_error(image)["code"] == 131047
        refused = env.sandbox.recorder.requests(provider="whatsapp", ok=False)
        assert [r.error_code for r in refused] == [131047, 131047]


async def test_the_window_closes_24_hours_after_the_users_last_message() -> None:
    async with whatsapp_env(manual_clock=True) as env:
        assert env.clock is not None
        env.sandbox.whatsapp.config.limits.enabled = False
        await env.user_writes(USER)
        env.clock.advance(24 * 3600 - 1)
        assert (await env.send(USER, body="still open")).status_code == 200
        env.clock.advance(2)
        closed = await env.send(USER, body="too late")
        assert graph_error(closed)["code"] == 131047
        assert (await env.send(USER, "template", **TEMPLATE)).status_code == 200
        await env.user_writes(USER, "back again")
        assert (await env.send(USER, body="welcome back")).status_code == 200


async def test_window_errors_can_arrive_as_failed_statuses_instead() -> None:
    async with whatsapp_env() as env:
        env.sandbox.whatsapp.config.window_errors = "webhook"
        response = await env.send(USER, body="outside the window")
        assert response.status_code == 200
        [status] = env.number.statuses
        assert status["status"] == "failed"
        assert status["errors"][0]["code"] == 131047


async def test_bad_token_is_a_graph_401() -> None:
    async with whatsapp_env() as env:
        response = await env.post({"messaging_product": "whatsapp"}, token="nope")
        assert response.status_code == 401
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "fbtrace_id"}
        assert (error["message"], error["type"], error["code"]) == (
            "Invalid OAuth access token.",
            "OAuthException",
            190,
        )
        missing = await env.http.post(f"/{GRAPH}/{PHONE_ID}/messages", json={})
        assert (missing.status_code, graph_error(missing)["code"]) == (401, 104)


async def test_a_token_of_another_number_cannot_use_this_one() -> None:
    async with whatsapp_env() as env:
        env.sandbox.whatsapp.add_number("200000000000009", "other-token")
        response = await env.post({"messaging_product": "whatsapp"}, token="other-token")
        error = graph_error(response)
        assert response.status_code == 400
        assert (error["code"], error["error_subcode"]) == (100, 33)
        assert f"Object with ID '{PHONE_ID}' does not exist" in error["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"to": USER, "text": {"body": "x"}},
            "(#100) The parameter messaging_product is required.",
        ),
        (
            {"messaging_product": "whatsapp", "text": {"body": "x"}},
            "(#100) The parameter to is required.",
        ),
        (
            {"messaging_product": "whatsapp", "to": USER, "type": "text", "text": {}},
            "(#100) The parameter text['body'] is required.",
        ),
        (
            {"messaging_product": "whatsapp", "to": USER, "text": {"body": "x" * 4097}},
            "(#100) Param text['body'] must be at most 4096 characters long.",
        ),
        (
            {"messaging_product": "whatsapp", "to": USER, "type": "image", "image": {}},
            "(#100) Param image must have exactly one of 'id' or 'link'.",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": USER,
                "type": "template",
                "template": {"name": "t", "language": {}},
            },
            "(#100) The parameter template['language']['code'] is required.",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": USER,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "Pick"},
                    "action": {"buttons": [{"type": "reply", "reply": {"id": "a"}}]},
                },
            },
            "(#100) The parameter interactive['action']['buttons'][0]['reply']['title'] "
            "is required.",
        ),
        (
            {"messaging_product": "whatsapp", "to": USER, "type": "location", "location": {}},
            "(#100) The parameter location['latitude'] is required.",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": USER,
                "text": {"body": "x"},
                "context": {"message_id": ""},
            },
            "(#100) The parameter context['message_id'] is required.",
        ),
    ],
)
async def test_invalid_parameters_are_code_100_naming_the_field(
    body: dict[str, Any], message: str
) -> None:
    async with whatsapp_env() as env:
        response = await env.post(body)
        assert response.status_code == 400
        error = graph_error(response)
        assert (error["code"], error["message"]) == (100, message)
        assert env.sandbox.whatsapp.sent_messages(PHONE_ID) == []


async def test_unknown_type_lists_the_valid_ones() -> None:
    async with whatsapp_env() as env:
        response = await env.send(USER, "poll", question="?")
        message = graph_error(response)["message"]
        assert message.startswith("(#100) Param type must be one of {")
        assert message.endswith('- got "poll".')


MESSAGES: list[tuple[str, dict[str, Any]]] = [
    ("text", {"body": "see https://example.com", "preview_url": True}),
    (
        "template",
        {
            **TEMPLATE,
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
        },
    ),
    ("image", {"link": "https://example.com/cat.jpg", "caption": "a cat"}),
    ("audio", {"id": "1013859600285441"}),
    ("video", {"link": "https://example.com/v.mp4"}),
    ("document", {"id": "1013859600285442", "filename": "invoice.pdf", "caption": "invoice"}),
    ("sticker", {"id": "1013859600285443"}),
    ("location", {"latitude": 38.72, "longitude": -9.14, "name": "Shop"}),
    (
        "reaction",
        {
            "message_id": "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
            "emoji": "👍",
        },
    ),
    (
        "interactive",
        {
            "type": "list",
            "body": {"text": "Choose delivery"},
            "action": {
                "button": "Options",
                "sections": [{"title": "Speed", "rows": [{"id": "fast", "title": "Express"}]}],
            },
        },
    ),
]


@pytest.mark.parametrize(("kind", "content"), MESSAGES, ids=[k for k, _ in MESSAGES])
async def test_every_message_type_is_accepted_inside_the_window(
    kind: str, content: dict[str, Any]
) -> None:
    async with whatsapp_env() as env:
        await env.user_writes(USER)
        response = await env.send(USER, kind, **content)
        assert response.status_code == 200, response.text
        assert env.sandbox.whatsapp.sent_messages(PHONE_ID)[-1]["type"] == kind


async def test_contacts_and_reply_context_are_accepted() -> None:
    async with whatsapp_env() as env:
        inbound = await env.user_writes(USER)
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": USER,
            "type": "contacts",
            "contacts": [{"name": {"formatted_name": "Shop support"}}],
            "context": {"message_id": inbound["id"]},
        }
        response = await env.post(body)
        assert response.status_code == 200, response.text
        assert env.sandbox.whatsapp.sent_messages(PHONE_ID)[-1]["reply_to"] == inbound["id"]


async def test_mark_as_read_and_number_info() -> None:
    async with whatsapp_env() as env:
        inbound = await env.user_writes(USER)
        read = {"messaging_product": "whatsapp", "status": "read", "message_id": inbound["id"]}
        response = await env.post(read)
        assert response.json() == {"success": True}
        assert env.number.inbound[-1]["read"] is True
        info = await env.http.get(
            f"/{GRAPH}/{PHONE_ID}", headers={"Authorization": f"Bearer {WA_TOKEN}"}
        )
        assert info.json()["display_phone_number"] == "+1 555 123 4567"
        assert info.json()["id"] == PHONE_ID


async def test_form_encoded_bodies_work_like_json() -> None:
    async with whatsapp_env() as env:
        response = await env.http.post(
            f"/{GRAPH}/{PHONE_ID}/messages",
            data={
                "messaging_product": "whatsapp",
                "to": USER,
                "type": "template",
                "template": '{"name": "hello_world", "language": {"code": "en_US"}}',
            },
            headers={"Authorization": f"Bearer {WA_TOKEN}"},
        )
        assert response.status_code == 200, response.text
