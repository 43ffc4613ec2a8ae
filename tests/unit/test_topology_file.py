"""The bus topology is data (``switchboard/events/topology.toml``) read into typed declarations:
a mistake in the file is an error naming where it is, never a service quietly granted less
(or more) than it declares."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from switchboard.events.topology import (
    SERVICES,
    Access,
    BucketUse,
    Durable,
    check_topology,
    load_services,
)

SHARED = """
[bucket_uses.api_keys]
bucket = "api_keys"
access = "read_write"
watch = true
why = "shared"
"""

ONE = """
[[services]]
name = "svc"
publishes = ["crm.>"]

[[services.durables]]
stream = "CRM"
name = "svc-reader"
filter_subjects = ["crm.>"]
description = "reads"
ack_wait_s = 5

[[services.buckets]]
use = "api_keys"

[[services.buckets]]
bucket = "leases"
access = "read"
"""


def test_the_file_declares_every_service_once_and_consistently() -> None:
    assert [s.name for s in SERVICES] == [
        "ingest",
        "crm",
        "outbound",
        "mtproto",
        "analytics",
        "flows",
    ]
    assert check_topology() == []


def test_values_become_the_declarations_with_their_defaults_and_shared_uses() -> None:
    (svc,) = load_services(SHARED + ONE)
    assert svc.publishes == ("crm.>",)
    assert svc.durables == (
        Durable(
            stream="CRM",
            name="svc-reader",
            filter_subjects=("crm.>",),
            description="reads",
            ack_wait_s=5,
        ),
    )
    assert svc.buckets == (
        BucketUse("api_keys", Access.READ_WRITE, watch=True, why="shared"),
        BucketUse("leases", Access.READ),
    )


def test_a_key_the_declaration_does_not_have_is_refused_where_it_stands() -> None:
    with pytest.raises(ValidationError) as err:
        load_services(SHARED + ONE.replace("ack_wait_s = 5", "ack_wait = 5"))
    assert err.value.errors()[0]["loc"] == (0, "durables", 0, "ack_wait")


def test_a_wrong_access_is_refused() -> None:
    with pytest.raises(ValidationError, match="read_write"):
        load_services(SHARED + ONE.replace('access = "read"', 'access = "write"'))


def test_a_use_of_an_undeclared_bucket_use_is_refused() -> None:
    with pytest.raises(ValueError, match=r"svc: no \[bucket_uses.api_keys\]"):
        load_services(ONE)
