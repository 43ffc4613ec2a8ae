"""WhatsApp media in the Cloud API fake: a user's image is fetched as Meta serves it (media
object with a URL, then the URL with the same token), an upload answers an id whose bytes
come back identical, and another number's token cannot read a number's media."""

from __future__ import annotations

import hashlib

from .messaging_support import GRAPH, PHONE_ID, WA_TOKEN, whatsapp_env

USER = "15551230000"
BEARER = {"Authorization": f"Bearer {WA_TOKEN}"}


async def test_a_users_image_is_served_with_its_real_sha256() -> None:
    async with whatsapp_env() as env:
        message = {"type": "image", "image": {"id": "1234567890123456", "mime_type": "image/jpeg"}}
        full = await env.sandbox.whatsapp.inject_message(PHONE_ID, USER, message)
        info = await env.http.get(f"/{GRAPH}/1234567890123456", headers=BEARER)
        assert info.status_code == 200, info.text
        body = info.json()
        assert body["mime_type"] == "image/jpeg"
        data = await env.http.get(body["url"], headers=BEARER)
        assert data.status_code == 200
        assert len(data.content) == body["file_size"]
        assert hashlib.sha256(data.content).hexdigest() == body["sha256"]
        assert full["image"]["sha256"] == body["sha256"]  # the webhook said the same
        assert (await env.http.get(body["url"])).status_code == 401  # the token is needed


async def test_an_upload_comes_back_identical_and_only_to_its_number() -> None:
    async with whatsapp_env() as env:
        payload = bytes(range(256)) * 40
        r = await env.http.post(
            f"/{GRAPH}/{PHONE_ID}/media",
            data={"messaging_product": "whatsapp", "type": "image/png"},
            files={"file": ("a.png", payload, "image/png")},
            headers=BEARER,
        )
        assert r.status_code == 200, r.text
        media_id = r.json()["id"]
        info = (await env.http.get(f"/{GRAPH}/{media_id}", headers=BEARER)).json()
        assert (await env.http.get(info["url"], headers=BEARER)).content == payload
        env.sandbox.whatsapp.add_number("999000111", "other-token")
        other = {"Authorization": "Bearer other-token"}
        refused = await env.http.get(f"/{GRAPH}/{media_id}", headers=other)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == 100
        # an image over Meta's 5 MB limit is refused at upload
        big = await env.http.post(
            f"/{GRAPH}/{PHONE_ID}/media",
            data={"messaging_product": "whatsapp", "type": "image/jpeg"},
            files={"file": ("b.jpg", b"\0" * (5 * 1024 * 1024 + 1), "image/jpeg")},
            headers=BEARER,
        )
        assert big.status_code == 400
