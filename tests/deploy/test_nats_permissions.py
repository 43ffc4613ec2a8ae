"""NATS users and permissions in deploy/nats/values.yaml: one user per service with exactly
the allow lists derived from the topology; everything each service really publishes is
allowed (found by reading the service's code, independently of the topology); nothing
broader is. The live counterpart (test_nats_permissions_live.py) runs the real services on
a real server with these users."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.events import all_models
from switchboard.events.k8s import NATS_ACCOUNT, NATS_USERS_SECRET, OPERATOR_USERS, password_env
from switchboard.events.streams import BUCKETS, STREAMS, dlq_subject, subject_matches
from switchboard.events.subjects import raw_subject
from switchboard.events.topology import (
    SERVICES,
    Access,
    Durable,
    Permissions,
    ServiceTopology,
    kv_stream,
    permissions,
    runtime_durables_in_reach,
)
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
        publish=tuple(raw["publish"]["allow"]),
        subscribe=tuple(raw["subscribe"]["allow"]),
        deny_publish=tuple(raw["publish"].get("deny", ())),
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
    assert got.deny_publish == expected.deny_publish
    assert got.subscribe == expected.subscribe == ("_INBOX.>",)
    assert "deny" not in _users()[service]["permissions"]["subscribe"]


def _constructed_catalog_models(service: str, kind: str = "event") -> set[str]:
    """Names of the catalog events (or commands) a service's code constructs (``Model(...)``
    calls of classes imported from ``switchboard.events.catalog``), read from its source. Each
    name is resolved in the module it is imported from: two domains may both have a class
    called, say, ``CommandRejected``."""
    models = set(all_models())
    found: set[str] = set()
    for path in (ROOT / f"services/{service}/src").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported: dict[str, Any] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "switchboard.events.catalog"
            ):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    imported[alias.asname or alias.name] = getattr(module, alias.name, None)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                model = imported.get(node.func.id)
                if model in models and model.kind == kind:
                    found.add(model.name)
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
    gateway = {"mtproto.session_connected", "mtproto.login_succeeded", "conv.message_received",
               "conv.message_edited", "conv.message_deleted", "conv.message_sent",
               "delivery.sent", "delivery.failed"}  # fmt: skip
    assert gateway <= _constructed_catalog_models("mtproto")
    # analytics makes no event at all: it counts them, and commands conversions.
    assert _constructed_catalog_models("analytics") == set()
    assert _constructed_catalog_models("analytics", "command") == {"outbound.conversion"}


@pytest.mark.parametrize("service", services())
def test_everything_a_service_publishes_is_allowed(service: str) -> None:
    perms = _perms(service)
    subjects = [_sample(name) for name in sorted(_constructed_catalog_models(service))]
    subjects.append(dlq_subject(_sample("conv.message_received")))  # consumers dead-letter
    if service == "ingest":
        subjects.append(raw_subject("telegram", "shop"))  # the webhook's durable store
    if service == "outbound":
        subjects.append(_sample("cmd.outbound.send"))  # the send API queues commands
    if service == "mtproto":
        subjects.append("cmd.mtproto.send.v1.sales-1")  # the send API queues a session's sends
    if service == "analytics":  # the commands it decides (conversions), as their real subject
        subjects += [
            f"cmd.{name}.v1.metacapi.px-1"
            for name in sorted(_constructed_catalog_models(service, "command"))
        ]
    denied = [s for s in subjects if not perms.may_publish(s)]
    assert denied == [], f"{service} may not publish {denied}"
    for stream in TOPOLOGY[service].streams():
        assert perms.may_publish(f"$JS.API.STREAM.INFO.{stream}")
    for durable in TOPOLOGY[service].durables:
        assert perms.may_publish(f"$JS.API.CONSUMER.MSG.NEXT.{durable.stream}.{durable.name}")
        assert perms.may_publish(f"$JS.ACK.{durable.stream}.{durable.name}.1.2.3.4.5")
    for rd in TOPOLOGY[service].runtime_durables:
        name = rd.name.replace("<session>", "sales-1")
        assert perms.may_publish(f"$JS.API.CONSUMER.DURABLE.CREATE.{rd.stream}.{name}")
        assert perms.may_publish(f"$JS.API.CONSUMER.MSG.NEXT.{rd.stream}.{name}")
        assert perms.may_publish(f"$JS.ACK.{rd.stream}.{name}.1.2.3.4.5")
        assert perms.may_publish(f"$JS.API.CONSUMER.DELETE.{rd.stream}.{name}") == rd.delete
    for erase in TOPOLOGY[service].erases:
        assert perms.may_publish(f"$JS.API.STREAM.MSG.DELETE.{erase.stream}")
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
                 "mtproto.session_started.v1.x", "cmd.mtproto.send.v1.x"],
    "mtproto": ["raw.telegram.v1.x", "crm.contact_created.v1.x", "cmd.crm.update_contact.v1.x",
                "cmd.outbound.send.v1.x", "delivery.queued.v1.x",
                "conv.callback_received.v1.x", "conv.contact_status_changed.v1.x",
                # commands to the gateway come from others; it only queues its own sends
                "cmd.mtproto.login_start.v1.x", "cmd.mtproto.login_submit_code.v1.x",
                "cmd.mtproto.logout.v1.x", "cmd.mtproto.subscribe.v1.x"],
    # analytics reads everything and writes no event: only conversion commands (and DLQ)
    "analytics": ["raw.telegram.v1.x", "conv.message_received.v1.x", "conv.message_sent.v1.x",
                  "delivery.sent.v1.x", "delivery.conversion_sent.v1.x", "crm.lead_created.v1.x",
                  "mtproto.session_connected.v1.x", "cmd.outbound.send.v1.x",
                  "cmd.outbound.bulk_send.v1.x", "cmd.crm.change_lead_stage.v1.x",
                  "cmd.mtproto.send.v1.x", "cmd.mtproto.login_start.v1.x"],
    # flows records its own runs and asks others: sends, and three CRM commands
    "flows": ["raw.telegram.v1.x", "conv.message_received.v1.x", "conv.message_sent.v1.x",
              "crm.contact_created.v1.x", "crm.lead_stage_changed.v1.x",
              "cmd.crm.erase_contact.v1.x", "cmd.crm.merge_contacts.v1.x",
              "cmd.outbound.bulk_send.v1.x", "cmd.outbound.campaign_start.v1.x",
              "delivery.sent.v1.x", "mtproto.session_started.v1.x", "cmd.mtproto.send.v1.x"],
}  # fmt: skip


@pytest.mark.parametrize("service", services())
def test_nothing_broader_than_needed(service: str) -> None:
    perms = _perms(service)
    for subject in OTHERS_EVENTS[service]:
        assert not perms.may_publish(subject), f"{service} may publish {subject}"
    admin = ["CREATE", "UPDATE", "DELETE", "PURGE"]
    topo = TOPOLOGY[service]
    erased = {e.stream for e in topo.erases}
    # Consumers it may delete: its runtime durables, and the ephemeral ones of its reads
    # (NACK's durables on those streams are denied by name, below).
    deletes_consumers = {rd.stream for rd in topo.runtime_durables if rd.delete}
    deletes_consumers |= {r.stream for r in topo.reads if r.ephemeral_consumers}
    # and the listings of the buckets it follows (``runtime.kv.entries`` deletes its own)
    deletes_consumers |= {kv_stream(b.bucket) for b in topo.buckets if b.watch}
    for stream in [s.name for s in STREAMS] + [kv_stream(b.name) for b in BUCKETS]:
        for verb in admin:
            assert not perms.may_publish(f"$JS.API.STREAM.{verb}.{stream}"), (verb, stream)
        erase = perms.may_publish(f"$JS.API.STREAM.MSG.DELETE.{stream}")
        assert erase == (stream in erased), f"{stream}: erasing only where declared"
        drop = perms.may_publish(f"$JS.API.CONSUMER.DELETE.{stream}.x")
        assert drop == (stream in deletes_consumers), f"{stream}: only consumers it makes"
    # No wildcard reaches a durable the service does not own, nor deletes one it owns (NACK's).
    for owner in SERVICES:
        for d in owner.durables:
            assert not perms.may_publish(f"$JS.API.CONSUMER.DELETE.{d.stream}.{d.name}"), d.name
            if owner.name == service:
                continue
            for subject in (
                f"$JS.API.CONSUMER.DURABLE.CREATE.{d.stream}.{d.name}",
                f"$JS.API.CONSUMER.CREATE.{d.stream}.{d.name}",
                f"$JS.API.CONSUMER.CREATE.{d.stream}.{d.name}.filter",
                f"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}",
                f"$JS.ACK.{d.stream}.{d.name}.1.2.3.4.5",
            ):
                assert not perms.may_publish(subject), (service, subject)
    for pattern in perms.publish + perms.subscribe:
        assert pattern not in (">", "*.>", "$JS.>", "$JS.API.>", "$KV.>", "$JS.ACK.>")
        # Replies come on _INBOX.>; a service answers only on the inbox prefix it declares.
        answers = TOPOLOGY[service].answers
        assert not pattern.startswith(("$SYS", "_INBOX.")) or pattern in ("_INBOX.>", *answers)
    assert "_INBOX.>" not in perms.publish
    writes = {b.bucket for b in TOPOLOGY[service].buckets if b.access is Access.READ_WRITE}
    for bucket in BUCKETS:
        allowed = perms.may_publish(f"$KV.{bucket.name}.key")
        assert allowed == (bucket.name in writes), bucket.name
    assert not perms.may_subscribe("crm.>")
    assert not perms.may_subscribe(">")


def test_wildcards_are_fenced_off_from_other_services_durables() -> None:
    """A service that owned a durable on MTPROTO (or CONV) would be out of reach of mtproto's
    runtime-durable wildcards (and crm's and analytics' ephemeral ones): the generator denies
    it by name."""
    other = ServiceTopology(
        name="reporting",
        publishes=(),
        durables=(
            Durable("MTPROTO", "reporting-mtproto", ("mtproto.>",), "sessions"),
            Durable("CONV", "reporting-conv", ("conv.>",), "conversations"),
        ),
    )
    fence = (*SERVICES, other)
    cases = {
        "mtproto": ("MTPROTO", "reporting-mtproto",
                    ["$JS.API.CONSUMER.DURABLE.CREATE", "$JS.API.CONSUMER.MSG.NEXT",
                     "$JS.API.CONSUMER.DELETE", "$JS.ACK"]),
        "crm": ("CONV", "reporting-conv",
                ["$JS.API.CONSUMER.CREATE", "$JS.API.CONSUMER.MSG.NEXT",
                 "$JS.API.CONSUMER.DELETE"]),
        "analytics": ("MTPROTO", "reporting-mtproto",
                      ["$JS.API.CONSUMER.CREATE", "$JS.API.CONSUMER.MSG.NEXT",
                       "$JS.API.CONSUMER.DELETE"]),
    }  # fmt: skip
    for service, (stream, durable, prefixes) in cases.items():
        open_ = permissions(TOPOLOGY[service], SERVICES)
        fenced = permissions(TOPOLOGY[service], fence)
        for prefix in prefixes:
            subject = f"{prefix}.{stream}.{durable}" + (".1.2.3.4.5" if prefix == "$JS.ACK" else "")
            assert open_.may_publish(subject), f"{subject}: the wildcard reaches it"
            assert not fenced.may_publish(subject), f"{service} may touch {subject}"
            (fence_rule,) = [d for d in fenced.deny_publish if subject_matches(d, subject)]
            assert fenced.reasons[fence_rule].startswith("may not")
    runtime = permissions(TOPOLOGY["mtproto"], fence)
    assert runtime.may_publish("$JS.API.CONSUMER.DELETE.MTPROTO.mtproto-send-sales-1")
    assert not runtime.may_publish("$JS.API.CONSUMER.DELETE.MTPROTO.mtproto-commands")


# Runtime durables (no fixed name) that another service's consumer-name wildcards reach and
# no deny rule can fence off: each is explained in docs/deploy.md, and a new one fails here.
_MTPROTO_QUEUES = [
    "mtproto's mtproto-send-<session> on MTPROTO",
    "mtproto's mtproto-query-<session> on MTPROTO",
    "mtproto's mtproto-deliver-<session> on MTPROTO",
    "mtproto's mtproto-change-<session> on MTPROTO",
    "mtproto's mtproto-media-<session> on MTPROTO",
]
RUNTIME_DURABLES_IN_REACH = {
    # Both project MTPROTO (account status, sessions) through ephemeral consumers.
    "analytics": _MTPROTO_QUEUES,
    "crm": _MTPROTO_QUEUES,
}


@pytest.mark.parametrize("service", services())
def test_runtime_durables_in_reach_are_the_documented_ones(service: str) -> None:
    found = runtime_durables_in_reach(TOPOLOGY[service])
    assert found == RUNTIME_DURABLES_IN_REACH.get(service, [])
    perms = _perms(service)
    for owner in SERVICES:
        for rd in owner.runtime_durables:
            name = rd.name.replace("<session>", "sales-1")
            reached = perms.may_publish(f"$JS.API.CONSUMER.MSG.NEXT.{rd.stream}.{name}")
            listed = f"{owner.name}'s {rd.name} on {rd.stream}" in found
            assert reached == (listed or owner.name == service), (owner.name, rd.name)
    # The guide explains each: a paragraph names the reader and the durables it reaches.
    paragraphs = (ROOT / "docs/deploy.md").read_text().split("\n\n")
    for entry in found:
        durable = entry.split("'s ", 1)[1].split(" on ")[0]
        explained = [p for p in paragraphs if f"`{service}`" in p and f"`{durable}`" in p]
        assert explained, f"docs/deploy.md does not explain why {service} reaches {entry}"


@pytest.mark.parametrize("service", services())
def test_every_permission_has_a_reason_in_the_topology(service: str) -> None:
    """No allow entry that the topology does not explain (the generator is the only source)."""
    topo = TOPOLOGY[service]
    reasons = permissions(topo).reasons
    perms = _perms(service)
    assert set(reasons) == set(perms.publish) | set(perms.deny_publish)
    assert not set(perms.publish) & set(perms.deny_publish)
    streams = set(topo.streams()) | {kv_stream(b.bucket) for b in topo.buckets}
    for pattern in [*perms.publish, *perms.deny_publish]:
        if pattern in topo.publishes or pattern in topo.answers:
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
