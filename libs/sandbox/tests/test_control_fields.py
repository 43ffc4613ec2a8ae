"""The control API's body and lookup rules, shared by every fake: a required field is
named when missing (with the older names it also answers to), an object field must be an
object, and a named bot or account that does not exist is a 404 naming it."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from switchboard.sandbox.httpjson import ControlError, base64_field, named, object_field, required


def test_a_required_field_comes_back_as_text_from_its_name_or_an_alias() -> None:
    assert required({"id": 42}, "id") == "42"
    assert required({"wa_id": "155"}, "from", "wa_id") == "155"
    assert required({"from": "1", "wa_id": "2"}, "from", "wa_id") == "1"


@pytest.mark.parametrize(
    ("data", "aliases", "message"),
    [
        ({}, (), "id is required"),
        ({"id": ""}, (), "id is required"),
        ({}, ("user",), "id (or user) is required"),
    ],
)
def test_a_missing_required_field_is_a_400_naming_it(
    data: dict[str, object], aliases: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ControlError) as caught:
        required(data, "id", *aliases)
    assert (caught.value.status, caught.value.message) == (400, message)


def test_an_object_field_is_an_object_or_absent() -> None:
    assert object_field({"message": {"text": "hi"}}, "message") == {"text": "hi"}
    assert object_field({}, "message") is None
    with pytest.raises(ControlError, match="message must be a JSON object"):
        object_field({"message": "hi"}, "message")


def _request(path: dict[str, str], query: str = "") -> Request:
    scope = {"type": "http", "path_params": path, "query_string": query.encode(), "headers": []}
    return Request(scope)


def test_a_named_object_comes_from_the_path_then_the_query_else_404() -> None:
    known = {"shop": "the shop bot"}
    assert named(_request({"bot": "shop"}), "bot", known.get) == "the shop bot"
    assert named(_request({}, "bot=shop"), "bot", known.get) == "the shop bot"
    with pytest.raises(ControlError) as caught:
        named(_request({"bot": "nope"}), "bot", known.get)
    assert (caught.value.status, caught.value.message) == (404, "no bot 'nope'")


def test_a_file_s_bytes_are_required_and_base64() -> None:
    """A customer's file: a misspelt or missing field made an empty file, which the fake then
    served as 0 bytes (found driving ``just up`` by hand); now a 400 naming the field."""
    assert base64_field({"content_base64": "aGk="}) == b"hi"
    for data, message in (
        ({"data_base64": "aGk="}, "content_base64 is required"),
        ({"content_base64": ""}, "content_base64 is required"),
        ({"content_base64": "%%%"}, "content_base64 must be base64"),
    ):
        with pytest.raises(ControlError) as caught:
            base64_field(data)
        assert (caught.value.status, caught.value.message) == (400, message)
