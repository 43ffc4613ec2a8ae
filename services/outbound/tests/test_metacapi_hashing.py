"""Our user_data normalization and hashing against Meta's own `facebook-business` SDK,
value by value over a table of tricky inputs, plus PROTOCOLS.md's test vectors."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pycountry
import pytest
from facebook_business.adobjects.serverside.gender import Gender  # type: ignore[import-untyped]
from facebook_business.adobjects.serverside.normalize import Normalize  # type: ignore[import-untyped]
from facebook_business.adobjects.serverside.user_data import UserData  # type: ignore[import-untyped]

from switchboard.outbound.providers.metacapi import (
    ISO_COUNTRIES,
    InvalidUserDataError,
    hash_value,
    normalize_user_data,
)

from .support import CUSTOMER

CASES = json.loads((Path(__file__).parent / "data" / "metacapi_hashing.json").read_text("utf-8"))
"""Tricky inputs by kind (the keys say what each group tries), and values the SDK refuses."""
TABLE: list[tuple[str, str]] = [
    (field, value) for group in CASES["same_as_the_sdk"].values() for field, value in group
]


@pytest.mark.parametrize(("field", "value"), TABLE, ids=[f"{f}:{v!r}" for f, v in TABLE])
def test_each_value_hashes_like_the_sdk(field: str, value: str) -> None:
    assert hash_value(field, value) == Normalize.normalize_field(field, value)


INVALID: list[tuple[str, str]] = [(field, value) for field, value in CASES["refused"]]


@pytest.mark.parametrize(("field", "value"), INVALID, ids=[f"{f}:{v!r}" for f, v in INVALID])
def test_values_the_sdk_refuses_are_refused(field: str, value: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        Normalize.normalize_field(field, value)
    with pytest.raises(InvalidUserDataError) as caught:
        hash_value(field, value)
    assert caught.value.field == field


def test_protocols_vectors() -> None:
    assert hash_value("em", "john_smith@gmail.com") == (
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )
    assert hash_value("ph", "16505551212") == (
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    )
    assert hash_value("ph", "+1 (650) 555-1212") == hash_value("ph", "16505551212")


def as_sets(data: dict[str, Any]) -> dict[str, Any]:
    return {k: set(v) if isinstance(v, list) else v for k, v in data.items()}


SDK_ARGUMENTS = {
    "emails": "em",
    "phones": "ph",
    "first_name": "fn",
    "last_name": "ln",
    "city": "ct",
    "state": "st",
    "zip_code": "zp",
    "country_code": "country",
    "date_of_birth": "db",
    "external_ids": "external_id",
    "client_ip_address": "client_ip_address",
    "client_user_agent": "client_user_agent",
    "fbc": "fbc",
    "fbp": "fbp",
    "lead_id": "lead_id",
    "ctwa_clid": "ctwa_clid",
}
"""The SDK's `UserData` argument for each user_data key (gender takes an enum: given apart)."""


def test_a_whole_user_data_matches_the_sdk_object() -> None:
    plain: dict[str, Any] = {
        **CUSTOMER,
        "em": [" John_Smith@Gmail.com", "john_smith@gmail.com", "olena@example.com"],
        "ph": ["+1 (650) 555-1212", "16505551212"],
        "external_id": ["CRM-123", "CRM-123", "crm-9"],
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4",
    }
    arguments = {argument: plain[key] for argument, key in SDK_ARGUMENTS.items()}
    sdk = UserData(**arguments, gender=Gender.FEMALE).normalize()
    ours = normalize_user_data(plain, hash_external_id=False)
    assert as_sets(ours) == as_sets(sdk)
    assert len(ours["em"]) == 2
    assert len(ours["ph"]) == 1
    for name in ("client_ip_address", "client_user_agent", "fbc", "fbp", "lead_id", "ctwa_clid"):
        assert ours[name] == plain[name]  # never hashed


def test_external_id_is_hashed_with_the_sdk_generic_rule_by_default() -> None:
    ours = normalize_user_data({"external_id": [" CRM-123 ", "crm-123", "u-7"]})
    expected = {Normalize.normalize_field("external_id", v) for v in ("CRM-123", "u-7")}
    assert set(ours["external_id"]) == expected
    assert len(ours["external_id"]) == 2


def test_documented_differences_from_the_sdk() -> None:
    # empty after trimming: dropped (the SDK would send SHA-256 of "")
    assert Normalize.normalize_field("fn", "   ") == hashlib.sha256(b"").hexdigest()
    assert hash_value("fn", "   ") is None
    assert normalize_user_data({"fn": "  ", "ct": "123"}) == {}
    # words for genders and date objects for birthdays
    assert hash_value("ge", "Female") == Normalize.normalize_field("ge", "f")
    assert hash_value("ge", "male") == Normalize.normalize_field("ge", "m")
    assert hash_value("db", date(1990, 1, 31)) == Normalize.normalize_field("db", "19900131")
    with pytest.raises(InvalidUserDataError):
        hash_value("ge", "x")


def test_invalid_values_are_dropped_and_reported_when_asked() -> None:
    problems: list[InvalidUserDataError] = []
    ours = normalize_user_data(
        {"em": ["bad", "ok@x.test"], "ph": "abc", "country": "USA"}, invalid=problems
    )
    assert ours == {"em": [hash_value("em", "ok@x.test")]}
    assert sorted(p.field for p in problems) == ["country", "em", "ph"]
    with pytest.raises(InvalidUserDataError):
        normalize_user_data({"ph": "abc"})


def test_country_list_is_pycountrys() -> None:
    assert {c.alpha_2.lower() for c in pycountry.countries} == ISO_COUNTRIES
