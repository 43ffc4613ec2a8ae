"""Which files a stored message carries and each provider's download limit, as pure
decisions over the content the CRM keeps."""

from __future__ import annotations

import json

from switchboard.crm.attachments import MB, attachments_of, download_limit, object_key
from switchboard.crm.erased_files import files_of


def test_a_photo_lists_its_file_first_then_its_smaller_sizes() -> None:
    content = {
        "kind": "photo",
        "caption": "bike",
        "file": {"file_id": "big", "width": 1280, "height": 960, "file_size": 90_000},
        "sizes": [{"file_id": "small", "width": 90, "height": 68}],
    }
    found = attachments_of(content)
    assert [(a.index, a.file_id) for a in found] == [(0, "big"), (1, "small")]
    assert found[0].public() == {
        "index": 0, "kind": "photo", "file_size": 90_000, "width": 1280, "height": 960,
    }  # fmt: skip


def test_text_and_locations_have_no_files() -> None:
    assert attachments_of({"kind": "text", "text": "hi"}) == []
    assert attachments_of({"kind": "location", "latitude": 1.0, "longitude": 2.0}) == []
    assert attachments_of({"kind": "photo"}) == []  # malformed: nothing to fetch


def test_each_provider_has_its_own_download_limit() -> None:
    assert download_limit("telegram", "document") == 20 * MB
    assert download_limit("whatsapp", "photo") == 5 * MB
    assert download_limit("whatsapp", "sticker") == 500 * 1024
    assert download_limit("whatsapp", "document") == 100 * MB
    assert download_limit("viber", "video") == 50 * MB
    assert download_limit("generic", "photo") is None


def test_object_keys_are_per_workspace_and_safe_for_any_message_id() -> None:
    one = object_key("ws1", "telegram:shop:u1/1/message_received", 0)
    assert one != object_key("ws2", "telegram:shop:u1/1/message_received", 0)
    assert ".." not in one
    assert one.count("/") == 3


def test_an_erasure_notes_every_file_under_every_id_it_is_kept_under() -> None:
    photo = {
        "kind": "photo",
        "file": {"file_id": "big", "width": 1280, "height": 960},
        "sizes": [{"file_id": "small", "width": 90, "height": 68}],
    }
    assert files_of(["ev-1", None], photo) == [("ev-1", 0), ("ev-1", 1)]
    assert files_of(["ev-2", "m-2"], json.dumps(photo)) == [
        ("ev-2", 0), ("ev-2", 1), ("m-2", 0), ("m-2", 1),
    ]  # fmt: skip
    assert files_of(["ev-3"], '{"kind": "text", "text": "hi"}') == []
    assert files_of(["ev-4"], '{"kind": "erased"}') == []
