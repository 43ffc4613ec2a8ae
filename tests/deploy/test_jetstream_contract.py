"""The NACK manifests and NATS values are generated from the catalog and must not drift:
`switchboard-events k8s` into a temp dir gives the committed files. The topology in the
catalog mirrors what the services declare in their code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.analytics import app as analytics_app
from switchboard.crm import app as crm_app
from switchboard.events.cli import main as events_cli
from switchboard.events.k8s import (
    HEADER,
    REPLICAS,
    go_duration,
    jetstream_manifests,
    to_yaml,
)
from switchboard.events.streams import BUCKETS, STREAMS, subject_matches
from switchboard.events.topology import (
    SERVICES,
    Durable,
    MessageErase,
    MessageSchedules,
    RuntimeDurables,
    ServiceTopology,
    check_topology,
)
from switchboard.mtproto import commands as mtproto_commands
from switchboard.mtproto import dialogs as mtproto_dialogs
from switchboard.mtproto import holder_serve
from switchboard.mtproto import media_fetch as mtproto_media
from switchboard.mtproto import relay as mtproto_relay
from switchboard.mtproto import runner as mtproto_runner
from switchboard.runtime import subscribers
from switchboard.runtime.consumer import ConsumerSpec
from tests.deploy.support import K8S, NATS_VALUES, build, find, services

JETSTREAM = K8S / "base/jetstream"

# The services' own consumer declarations, from the modules the topology names for each.
SERVICE_DURABLES: dict[str, list[ConsumerSpec]] = {
    svc.name: [s.spec for s in subscribers.declared(svc.name)] for svc in SERVICES
}


def _diff(generated: dict[str, str], committed: dict[str, str]) -> list[str]:
    problems = [f"missing: {name}" for name in sorted(set(generated) - set(committed))]
    problems += [f"not generated: {name}" for name in sorted(set(committed) - set(generated))]
    problems += [
        f"differs: {name}"
        for name in sorted(set(generated) & set(committed))
        if generated[name] != committed[name]
    ]
    return problems


def _render(tmp_path: Path) -> tuple[dict[str, str], str]:
    out, values = tmp_path / "jetstream", tmp_path / "values.yaml"
    assert events_cli(["k8s", "--out", str(out), "--nats-values", str(values)]) == 0
    return {p.name: p.read_text() for p in out.glob("*.yaml")}, values.read_text()


def test_committed_manifests_are_current(tmp_path: Path) -> None:
    """`switchboard-events k8s` was run after the last catalog change."""
    generated, values = _render(tmp_path)
    committed = {p.name: p.read_text() for p in JETSTREAM.glob("*.yaml")}
    assert _diff(generated, committed) == [], "run `uv run switchboard-events k8s` and commit"
    assert values == NATS_VALUES.read_text(), "run `uv run switchboard-events k8s` and commit"


def test_drift_is_caught(tmp_path: Path) -> None:
    """The comparison bites: a stream removed, a file added."""
    generated, _ = _render(tmp_path)
    streams = generated["streams.yaml"]
    first_doc_end = streams.index("---\n")
    without_raw = streams[first_doc_end + 4 :]
    assert _diff(generated, {**generated, "streams.yaml": without_raw}) == ["differs: streams.yaml"]
    assert _diff(generated, {**generated, "extra.yaml": "x"}) == ["not generated: extra.yaml"]


def test_generation_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "jetstream"
    events_cli(["k8s", "--out", str(out), "--nats-values", str(tmp_path / "v.yaml")])
    stamp = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*.yaml")}
    (out / "stale.yaml").write_text(HEADER + "kind: Stream\n")  # no longer generated
    (out / "mine.yaml").write_text("kind: ConfigMap\n")  # not ours: left alone
    events_cli(["k8s", "--out", str(out), "--nats-values", str(tmp_path / "v.yaml")])
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*.yaml")}
    assert after.pop("mine.yaml")
    assert after == stamp


def test_yaml_emitter_round_trips() -> None:
    doc: dict[str, Any] = {
        "a": "raw.>",
        "b": ["$JS.API.INFO", "*", "yes", "1h", "", "x: y", "- z"],
        "c": {"d": True, "e": None, "f": 3, "g": [], "h": {}},
        "i": [{"j": 1, "k": [1, 2]}, [3, 4]],
    }
    assert yaml.safe_load(to_yaml(doc)) == doc


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    docs = [d for d in build("prod") if d["kind"] == kind]
    key = {"Stream": "name", "KeyValue": "bucket", "Consumer": "durableName"}[kind]
    return {d["spec"][key]: d["spec"] for d in docs}


def test_every_stream_of_the_catalog_is_a_nack_stream() -> None:
    streams = _resources("Stream")
    assert set(streams) == {s.name for s in STREAMS}
    for spec in STREAMS:
        got = streams[spec.name]
        assert got["subjects"] == list(spec.subjects)
        assert got["retention"] == spec.retention.value
        assert got["replicas"] == REPLICAS == 3
        assert got["storage"] == "file"
        assert got.get("maxAge") == (go_duration(spec.max_age_s) if spec.max_age_s else None)
        assert got["duplicateWindow"] == go_duration(spec.duplicate_window_s)
        assert got["maxMsgSize"] == spec.max_msg_size
        assert got["denyDelete"] == spec.deny_delete
        assert got["allowDirect"] == spec.allow_direct
        assert got["preventDelete"] is True, "deleting the resource never deletes the data"


def test_every_bucket_of_the_catalog_is_a_nack_keyvalue() -> None:
    buckets = _resources("KeyValue")
    assert set(buckets) == {b.name for b in BUCKETS}
    for spec in BUCKETS:
        got = buckets[spec.name]
        assert got["history"] == spec.history
        assert got.get("ttl") == (go_duration(spec.ttl_s) if spec.ttl_s else None)
        assert got["replicas"] == 3
        assert got["storage"] == "file"


def test_every_durable_of_the_topology_is_a_nack_consumer() -> None:
    consumers = _resources("Consumer")
    declared = {d.name: d for s in SERVICES for d in s.durables}
    assert set(consumers) == set(declared)
    for name, durable in declared.items():
        got = consumers[name]
        assert got["streamName"] == durable.stream
        assert got["filterSubjects"] == list(durable.filter_subjects)
        assert "filterSubject" not in got, "the services send filter_subjects, a list"
        assert "description" not in got, "the services send none"
        assert got["maxDeliver"] == durable.max_deliver
        assert got["ackPolicy"] == "explicit"


def test_all_nack_resources_use_the_generated_account() -> None:
    docs = build("base")
    account = find(docs, "Account")
    assert len(account) == 1
    for kind in ("Stream", "KeyValue", "Consumer"):
        for doc in find(docs, kind):
            assert doc["spec"]["account"] == account[0]["metadata"]["name"]


def test_topology_is_consistent_with_the_catalog() -> None:
    assert check_topology() == []
    assert [s.name for s in SERVICES] == services()


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_topology_mirrors_the_services_consumers(service: str) -> None:
    """Each durable in the topology is what the service creates itself, field by field:
    NACK and the service must agree, or each would keep changing the other's consumer."""
    topo = next(s for s in SERVICES if s.name == service)
    code = {spec.durable: spec for spec in SERVICE_DURABLES[service]}
    assert set(code) == {d.name for d in topo.durables}
    for durable in topo.durables:
        cfg = code[durable.name].config()
        assert code[durable.name].stream == durable.stream
        assert tuple(cfg.filter_subjects or ()) == durable.filter_subjects
        assert cfg.max_deliver == durable.max_deliver
        assert cfg.ack_wait == durable.ack_wait_s
        assert cfg.max_ack_pending == durable.max_ack_pending
        assert cfg.deliver_policy is not None
        assert cfg.deliver_policy.value == "all"
        assert cfg.ack_policy is not None
        assert cfg.ack_policy.value == "explicit"


def test_topology_check_bites_on_runtime_grants() -> None:
    """Runtime durables, erasures and message schedules are checked like the rest of the
    declarations."""
    bad = ServiceTopology(
        name="bad",
        publishes=(),
        durables=(Durable("MTPROTO", "bad-send-fixed", ("cmd.mtproto.x.>",), "looks runtime"),),
        runtime_durables=(
            RuntimeDurables("NOPE", "bad-<id>", "x.*", "unknown stream"),
            RuntimeDurables("MTPROTO", "bad-<id>", "crm.*", "filter outside the stream"),
            RuntimeDurables("MTPROTO", "bad-send", "cmd.mtproto.x.*", "no placeholder"),
        ),
        erases=(
            MessageErase("NOPE", ("x.>",), "unknown stream"),
            MessageErase("MTPROTO", ("crm.>",), "never in MTPROTO"),
        ),
        schedules=(MessageSchedules("x.held.>", ("x.fired.>",), "published by no one"),),
    )
    problems = check_topology((bad,))
    for needle in ("unknown stream NOPE", "filters crm.* outside", "<placeholder>",
                   "look like runtime", "erases from unknown", "never holds",
                   "schedules on x.held.> without", "schedules on x.fired.> without"):  # fmt: skip
        assert any(needle in p for p in problems), needle


def test_runtime_durables_mirror_the_gateway_s_send_queues() -> None:
    """The per-session send durables the topology declares are the ones the gateway makes:
    same stream, same name shape, a filter the declared one covers."""
    mtproto = next(s for s in SERVICES if s.name == "mtproto")
    queues, queries, deliveries, changes, media = mtproto.runtime_durables
    made = (
        (queues, mtproto_runner.send_consumer, [mtproto_runner.send_subject("sales-1")]),
        (queries, mtproto_dialogs.query_consumer, mtproto_dialogs.query_subjects("sales-1")),
        (deliveries, mtproto_relay.deliver_consumer, [mtproto_relay.deliver_subject("sales-1")]),
        (changes, mtproto_relay.change_consumer, [mtproto_relay.change_subject("sales-1")]),
        (media, mtproto_media.media_consumer, [mtproto_media.media_subject("sales-1")]),
    )
    for declared, consumer, subjects in made:
        assert declared.stream == mtproto_runner.STREAM
        prefix = declared.name.removesuffix("<session>")
        assert consumer("sales-1") == f"{prefix}sales-1"
        assert all(subject_matches(declared.filter_subject, s) for s in subjects)
        assert declared.delete, "logout deletes a session's queues"
        # No NACK consumer may look like one of them (the service would delete it at logout).
        assert not [d for s in SERVICES for d in s.durables if d.name.startswith(prefix)]


def test_erased_subjects_are_the_gateway_s_login_and_session_commands() -> None:
    """What the topology says the gateway erases is what it erases: the login commands
    among its durable's filters (``commands``), and the commands a session's holder serves
    (``holder_serve.done``: sends, deliveries, downloads, queries), and nothing else."""
    mtproto = next(s for s in SERVICES if s.name == "mtproto")
    (erase,) = mtproto.erases
    assert erase.stream == holder_serve.STREAM == mtproto_runner.STREAM
    logins = {f for f in mtproto_commands.SPEC.filter_subjects if "login_" in f}
    served = [
        mtproto_runner.send_subject("sales-1"),
        mtproto_relay.deliver_subject("sales-1"),
        mtproto_relay.change_subject("sales-1"),
        mtproto_media.media_subject("sales-1"),
        *mtproto_dialogs.query_subjects("sales-1"),
    ]
    held = {s for s in erase.subjects if s not in logins}
    assert logins <= set(erase.subjects)
    assert all(any(subject_matches(e, s) for e in held) for s in served)
    assert len(held) == len(served), "one erased subject per kind of served command"


def test_crm_projection_streams_are_read_by_crm() -> None:
    """The CRM's projections read CONV, CRM and DELIVERY: the topology declares each."""
    crm = next(s for s in SERVICES if s.name == "crm")
    reads = {r.stream for r in crm.reads}
    assert {module.STREAM for module in crm_app.PROJECTIONS} <= reads


def test_analytics_reads_what_its_projections_project() -> None:
    """One projection per stream it declares, each filtering subjects of that stream; no
    durable, no bucket, no message get: it only reads forward from its checkpoints."""
    analytics = next(s for s in SERVICES if s.name == "analytics")
    streams = {s.name: s for s in STREAMS}
    projected = {module.STREAM: module.SUBJECTS for module in analytics_app.PROJECTORS}
    assert set(projected) == {r.stream for r in analytics.reads}
    for stream, subjects in projected.items():
        for subject in subjects:
            assert any(subject_matches(p, subject.replace(">", "x")) for p in
                       streams[stream].subjects), (stream, subject)  # fmt: skip
    assert all(r.ephemeral_consumers and not r.message_get for r in analytics.reads)
    assert (analytics.durables, analytics.runtime_durables) == ((), ())
    # Buckets only for API keys, dashboard sign-ins, sealed fields' keys, the server's clock
    # and (read only: it holds no key to their secrets) the accounts that say which pixel
    # is a workspace's; never for the data it counts.
    assert {b.bucket for b in analytics.buckets} == {
        "accounts", "api_keys", "clock", "dashboard_sessions", "pii_keys"
    }  # fmt: skip
    assert next(b for b in analytics.buckets if b.bucket == "accounts").access == "read"
    assert analytics.erases == ()


def test_generated_manifests_listed_by_their_kustomization() -> None:
    files = jetstream_manifests()
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    assert sorted(kustomization["resources"]) == sorted(set(files) - {"kustomization.yaml"})
