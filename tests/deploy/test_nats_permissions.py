"""NATS users and permissions in deploy/nats/values.yaml: one user per service with exactly
the allow lists derived from the topology; everything each service really publishes is
allowed (found by reading the service's code, independently of the topology); nothing
broader is. The live counterpart (test_nats_permissions_live.py) runs the real services on
a real server with these users."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.events import all_models
from switchboard.events.k8s import NATS_ACCOUNT, NATS_USERS_SECRET, OPERATOR_USERS, password_env
from switchboard.events.streams import BUCKETS, STREAMS, dlq_subject, subject_matches
from switchboard.events.subjects import raw_subject
from switchboard.events.topology import SERVICES, Access, Permissions, kv_stream, permissions
from tests.deploy.support import NATS_VALUES, ROOT, services

TOPOLOGY = {s.name: s for s in SERVICES}


def _values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(NATS_VALUES.read_text())
    return data


def _users() -> dict[str, dict[str, Any]]:
    account = _values()["config"]["merge"]["accounts"][NATS_ACCOUNT]
    return {u["user"]: u for u in account["users"]}


def _perms(service: str) -> Permissions:
    raw = _users()[service]["permissions"]
    return Permissions(
        publish=tuple(raw["publish"]["allow"]), subscribe=tuple(raw["subscribe"]["allow"])
    )


def test_cluster_jetstream_and_accounts() -> None:
    config = _values()["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    merge = config["merge"]
    assert merge["accounts"][NATS_ACCOUNT]["jetstream"] == "enabled"
    assert merge["system_account"] in merge["accounts"]


def test_one_user_per_service_plus_operators() -> None:
    assert list(_users()) == [*OPERATOR_USERS, *services()]
    for operator in OPERATOR_USERS:
        assert "permissions" not in _users()[operator], "NACK and operators administer streams"


def test_every_password_comes_from_the_users_secret() -> None:
    env = _values()["container"]["env"]
    accounts = _values()["config"]["merge"]["accounts"]
    for users in (acc["users"] for acc in accounts.values()):
        for user in users:
            var = password_env(user["user"])
            assert user["password"] == f"<< ${var} >>", "never a literal password"
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": NATS_USERS_SECRET, "key": user["user"]}


@pytest.mark.parametrize("service", services())
def test_user_permissions_are_the_topology_s(service: str) -> None:
    expected = permissions(TOPOLOGY[service])
    got = _perms(service)
    assert got.publish == expected.publish
    assert got.subscribe == expected.subscribe == ("_INBOX.>",)


def _constructed_catalog_models(service: str) -> set[str]:
    """Names of the catalog events a service's code constructs (``Model(...)`` calls of
    classes imported from ``switchboard.events.catalog``), read from its source."""
    catalog = {m.__name__: m for m in all_models()}
    found: set[str] = set()
    for path in (ROOT / f"services/{service}/src").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("switchboard.events.catalog")
            for alias in node.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                if name in imported and name in catalog and catalog[name].kind == "event":
                    found.add(catalog[name].name)
    return found


def _sample(name: str, version: int = 1) -> str:
    return f"{name}.v{version}.telegram.acct-1"


def test_services_publish_what_the_code_says() -> None:
    """Sanity of the code reading: ingest makes conversation events, crm makes CRM events."""
    assert "conv.message_received" in _constructed_catalog_models("ingest")
    assert "delivery.receipt" in _constructed_catalog_models("ingest")
    assert "crm.contact_created" in _constructed_catalog_models("crm")
    assert {"delivery.queued", "delivery.retrying", "delivery.sent", "delivery.failed"} <= (
        _constructed_catalog_models("outbound")
    )
    assert "conv.message_sent" in _constructed_catalog_models("outbound")


@pytest.mark.parametrize("service", services())
def test_everything_a_service_publishes_is_allowed(service: str) -> None:
    perms = _perms(service)
    subjects = [_sample(name) for name in sorted(_constructed_catalog_models(service))]
    subjects.append(dlq_subject(_sample("conv.message_received")))  # consumers dead-letter
    if service == "ingest":
        subjects.append(raw_subject("telegram", "shop"))  # the webhook's durable store
    if service == "outbound":
        subjects.append(_sample("cmd.outbound.send"))  # the send API queues commands
    denied = [s for s in subjects if not perms.may_publish(s)]
    assert denied == [], f"{service} may not publish {denied}"
    for stream in TOPOLOGY[service].streams():
        assert perms.may_publish(f"$JS.API.STREAM.INFO.{stream}")
    for durable in TOPOLOGY[service].durables:
        assert perms.may_publish(f"$JS.API.CONSUMER.MSG.NEXT.{durable.stream}.{durable.name}")
        assert perms.may_publish(f"$JS.ACK.{durable.stream}.{durable.name}.1.2.3.4.5")
    for bucket in TOPOLOGY[service].buckets:
        assert perms.may_publish(f"$JS.API.DIRECT.GET.KV_{bucket.bucket}.$KV.{bucket.bucket}.k")
    assert perms.may_subscribe("_INBOX.abc.1")


OTHERS_EVENTS = {
    "ingest": ["crm.contact_created.v1.x", "cmd.crm.update_contact.v1.x", "cmd.outbound.send.v1.x",
               "delivery.sent.v1.x", "mtproto.session_started.v1.x"],
    "crm": ["raw.telegram.v1.x", "conv.message_received.v1.x", "delivery.receipt.v1.x",
            "cmd.crm.update_contact.v1.x", "cmd.outbound.send.v1.x"],
    "outbound": ["raw.telegram.v1.x", "conv.message_received.v1.x", "delivery.receipt.v1.x",
                 "crm.contact_created.v1.x", "cmd.crm.update_contact.v1.x",
                 "mtproto.session_started.v1.x"],
}  # fmt: skip


@pytest.mark.parametrize("service", services())
def test_nothing_broader_than_needed(service: str) -> None:
    perms = _perms(service)
    for subject in OTHERS_EVENTS[service]:
        assert not perms.may_publish(subject), f"{service} may publish {subject}"
    admin = ["CREATE", "UPDATE", "DELETE", "PURGE"]
    for stream in [s.name for s in STREAMS] + [kv_stream(b.name) for b in BUCKETS]:
        for verb in admin:
            assert not perms.may_publish(f"$JS.API.STREAM.{verb}.{stream}"), (verb, stream)
        assert not perms.may_publish(f"$JS.API.STREAM.MSG.DELETE.{stream}")
        assert not perms.may_publish(f"$JS.API.CONSUMER.DELETE.{stream}.x")
    for pattern in perms.publish + perms.subscribe:
        assert pattern not in (">", "*.>", "$JS.>", "$JS.API.>", "$KV.>", "$JS.ACK.>")
        assert not pattern.startswith(("$SYS", "_INBOX.")) or pattern == "_INBOX.>"
    writes = {b.bucket for b in TOPOLOGY[service].buckets if b.access is Access.READ_WRITE}
    for bucket in BUCKETS:
        allowed = perms.may_publish(f"$KV.{bucket.name}.key")
        assert allowed == (bucket.name in writes), bucket.name
    assert not perms.may_subscribe("crm.>")
    assert not perms.may_subscribe(">")


@pytest.mark.parametrize("service", services())
def test_every_permission_has_a_reason_in_the_topology(service: str) -> None:
    """No allow entry that the topology does not explain (the generator is the only source)."""
    topo = TOPOLOGY[service]
    reasons = permissions(topo).reasons
    assert set(reasons) == set(_perms(service).publish)
    streams = set(topo.streams()) | {kv_stream(b.bucket) for b in topo.buckets}
    for pattern in _perms(service).publish:
        if pattern in topo.publishes:
            continue
        parts = pattern.split(".")
        if pattern.startswith("$KV."):
            assert parts[1] in {b.bucket for b in topo.buckets}, pattern
        elif pattern == "$JS.API.INFO":
            continue
        else:
            named = [p for p in parts if p in streams]
            assert named, f"{pattern} names none of {service}'s streams or buckets"


def test_publish_patterns_are_captured_by_streams() -> None:
    """A service never publishes where no stream stores it (the publish would time out)."""
    for topo in SERVICES:
        for pattern in topo.publishes:
            probe = pattern.replace(">", "x.y")
            assert any(subject_matches(p, probe) for s in STREAMS for p in s.subjects), pattern


def test_values_file_is_the_only_place_users_live() -> None:
    """The NACK account secret and the services' password secrets name existing users."""
    base = Path(ROOT / "deploy/k8s/base")
    text = "\n".join(p.read_text() for p in base.rglob("*.yaml"))
    for service in services():
        assert f"SWITCHBOARD_NATS_USER={service}" in text
    assert "nack-nats-user" in text
