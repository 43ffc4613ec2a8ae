"""Our user_data normalization and hashing against Meta's own `facebook-business` SDK,
value by value over a table of tricky inputs, plus PROTOCOLS.md's test vectors."""

from __future__ import annotations

import hashlib
from datetime import date
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

SHA_UPPER = "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F"
MD5 = "5d41402abc4b2a76b9719d911017c592"

TABLE: list[tuple[str, str]] = [
    # emails: case, spaces, tags, unicode, punctuation, already hashed
    ("em", "john_smith@gmail.com"),
    ("em", "  John_Smith@Gmail.COM  "),
    ("em", "JOHN.SMITH+crm@GMAIL.COM"),
    ("em", "\tolena@example.com\n"),
    ("em", "олена@приклад.укр"),
    ("em", "o'brien@example.ie"),
    ("em", "Ünal.Şahin@Örnek.com.tr"),
    ("em", SHA_UPPER),
    ("em", f"  {SHA_UPPER.lower()} "),
    ("em", MD5),
    # phones: +, spaces, dashes, parentheses, leading zeros, international prefixes
    ("ph", "16505551212"),
    ("ph", "+1 (650) 555-1212"),
    ("ph", "+1-650-555-1212"),
    ("ph", "001 650 555 1212"),
    ("ph", "0044 20 7946 0958"),
    ("ph", "+44 020 7946 0958"),
    ("ph", "+380 (67) 123-45-67"),
    ("ph", " 380671234567 "),
    ("ph", "+49 30 1234567"),
    ("ph", "0000441234567"),
    ("ph", "+(1) 650 555 1212"),
    (
        "ph",
        "\u0661\u0666\u0665\u0660\u0665\u0665\u0665\u0661\u0662\u0661\u0662",
    ),  # Arabic-Indic digits
    ("ph", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"),
    # names: case, spaces, accents, apostrophes, hyphens, other scripts (no punctuation removal)
    ("fn", "John"),
    ("fn", "  MARY-Jane "),
    ("fn", "Zoë"),
    ("fn", "Ólafur"),
    ("fn", "José Luis"),
    ("fn", "Анна"),
    ("fn", "李"),
    ("fn", "ẞtefan"),
    ("fn", "ΣΊΣΥΦΟΣ"),
    ("ln", "O'Brien"),
    ("ln", "Dr. Müller-Lüdenscheidt"),
    ("ln", "SMITH, JR."),
    ("ln", "Kovalenko "),
    # cities and states: digits, dots, spaces, dashes, parentheses removed; accents kept
    ("ct", "New York"),
    ("ct", "San Francisco 94105"),
    ("ct", "St. Louis"),
    ("ct", "Winston-Salem"),
    ("ct", "Kyiv (Kiev)"),
    ("ct", "İstanbul"),
    ("ct", "São Paulo"),
    ("ct", "Köln"),
    ("st", "CA"),
    ("st", " California "),
    ("st", "N.Y."),
    ("st", "Île-de-France"),
    # zip codes: spaces removed, cut at the first dash
    ("zp", "94105"),
    ("zp", "94105-1234"),
    ("zp", " 941 05 "),
    ("zp", "SW1A 1AA"),
    ("zp", "K1A-0B1"),
    ("zp", "01234"),
    # countries: anything but a-z removed, then ISO alpha-2
    ("country", "US"),
    ("country", " us "),
    ("country", "U.S."),
    ("country", "Gb"),
    ("country", "ua"),
    # dates of birth and genders
    ("db", "19900131"),
    ("db", " 1990-01-31 "),
    ("ge", "f"),
    ("ge", " M "),
    # the SDK's further fields
    ("f5first", "Christopher"),
    ("f5last", "Ba"),
    ("fi", "Zoë"),
    ("dobd", "5"),
    ("dobd", "31"),
    ("dobm", "1"),
    ("doby", "1990"),
]


@pytest.mark.parametrize(("field", "value"), TABLE, ids=[f"{f}:{v!r}" for f, v in TABLE])
def test_each_value_hashes_like_the_sdk(field: str, value: str) -> None:
    assert hash_value(field, value) == Normalize.normalize_field(field, value)


INVALID = [
    ("em", "not-an-email"),
    ("em", "john@localhost"),
    ("ph", "650.555.1212"),
    ("ph", "call me"),
    ("ph", "+0 123"),
    ("ph", "12345"),
    ("ph", "+1 650 555 1212 ext 5"),
    ("country", "USA"),
    ("country", "Ukraine"),
    ("country", "XX"),
    ("dobd", "32"),
    ("dobm", "13"),
    ("doby", "90"),
]


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


def test_a_whole_user_data_matches_the_sdk_object() -> None:
    plain: dict[str, Any] = {
        **CUSTOMER,
        "em": [" John_Smith@Gmail.com", "john_smith@gmail.com", "olena@example.com"],
        "ph": ["+1 (650) 555-1212", "16505551212"],
        "external_id": ["CRM-123", "CRM-123", "crm-9"],
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4",
    }
    sdk = UserData(
        emails=plain["em"],
        phones=plain["ph"],
        first_name=plain["fn"],
        last_name=plain["ln"],
        city=plain["ct"],
        state=plain["st"],
        zip_code=plain["zp"],
        country_code=plain["country"],
        date_of_birth=plain["db"],
        gender=Gender.FEMALE,
        external_ids=plain["external_id"],
        client_ip_address=plain["client_ip_address"],
        client_user_agent=plain["client_user_agent"],
        fbc=plain["fbc"],
        fbp=plain["fbp"],
        lead_id=plain["lead_id"],
        ctwa_clid=plain["ctwa_clid"],
    ).normalize()
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
