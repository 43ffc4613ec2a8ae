"""deploy/k8s: every overlay builds with `kubectl kustomize`, every resource validates against
the Kubernetes schemas (strict, oldest and newest supported version) and the vendored CRD
schemas, and the invariants the deployment guide promises hold for every service."""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

import pytest

from switchboard.events.k8s import NATS_URL
from switchboard.runtime.settings import ConfigError, load_settings
from tests.deploy.support import (
    DEPLOY,
    K8S_VERSIONS,
    OVERLAYS,
    POSTGRES,
    SETTINGS,
    build,
    env_field,
    find,
    is_secret_field,
    load_docs,
    needed_in_container,
    one,
    services,
    uses_postgres,
    validation_errors,
)

NAMESPACE = "switchboard"
ALL_BUILDS = ("base", *OVERLAYS)


def _container(deploy: dict[str, Any]) -> dict[str, Any]:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _config(docs: list[dict[str, Any]], deploy: dict[str, Any]) -> dict[str, str]:
    """The ConfigMap data a Deployment's container reads through envFrom."""
    data: dict[str, str] = {}
    for source in _container(deploy).get("envFrom", []):
        name = source["configMapRef"]["name"]
        data.update(one(docs, "ConfigMap", name)["data"])
    return data


def _secret_refs(deploy: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in _container(deploy).get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


@pytest.mark.parametrize("overlay", ALL_BUILDS)
def test_overlay_builds(overlay: str) -> None:
    docs = build(overlay)
    assert docs
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "switchboard"


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", ALL_BUILDS)
def test_every_resource_validates(overlay: str, k8s_version: str) -> None:
    problems = [p for doc in build(overlay) for p in validation_errors(doc, k8s_version)]
    assert problems == []


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_postgres_cluster_validates(k8s_version: str) -> None:
    docs = load_docs(POSTGRES)
    assert {d["kind"] for d in docs} == {"Cluster", "PodMonitor"}
    assert [p for d in docs for p in validation_errors(d, k8s_version)] == []
    cluster = one(docs, "Cluster", "switchboard-pg")
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["bootstrap"]["initdb"]["secret"]["name"] == "switchboard-pg-app"


def test_validation_bites() -> None:
    """The validators really reject: a typo in a built-in kind and in a custom resource."""
    deploy = one(build("base"), "Deployment", "crm")
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert validation_errors(deploy, K8S_VERSIONS[-1])
    stream = find(build("base"), "Stream")[0]
    stream["spec"]["maxAge"] = "7 days"
    assert validation_errors(stream, K8S_VERSIONS[-1])
    stream["spec"]["maxAge"] = "168h"
    stream["spec"]["replicaz"] = 3
    assert validation_errors(stream, K8S_VERSIONS[-1])
    unknown = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}
    assert validation_errors(unknown, K8S_VERSIONS[-1])


def test_every_service_is_deployed_and_nothing_else() -> None:
    docs = build("base")
    assert {d["metadata"]["name"] for d in find(docs, "Deployment")} == set(services())
    assert set(SETTINGS) == set(services()), "tests/deploy/support.py SETTINGS lists each service"


@pytest.mark.parametrize("overlay", ALL_BUILDS)
@pytest.mark.parametrize("service", services())
def test_service_has_its_resources(overlay: str, service: str) -> None:
    docs = build(overlay)
    labels = {"app.kubernetes.io/name": service}
    deploy = one(docs, "Deployment", service)
    assert deploy["spec"]["selector"]["matchLabels"] == labels
    assert labels.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    svc = one(docs, "Service", service)
    assert svc["spec"]["selector"] == labels
    sa = one(docs, "ServiceAccount", service)
    assert sa["automountServiceAccountToken"] is False
    pdb = one(docs, "PodDisruptionBudget", service)
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    monitor = one(docs, "ServiceMonitor", service)
    assert monitor["spec"]["selector"]["matchLabels"] == labels
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # Metrics are served on the ops port only (they name accounts and workspaces).
    assert monitor["spec"]["endpoints"][0]["port"] == "ops"
    assert "ops" in {p["name"] for p in svc["spec"]["ports"]}
    policy = one(docs, "NetworkPolicy", service)
    assert policy["spec"]["podSelector"]["matchLabels"] == labels


@pytest.mark.parametrize("overlay", ALL_BUILDS)
@pytest.mark.parametrize("service", services())
def test_pod_security(overlay: str, service: str) -> None:
    deploy = one(build(overlay), "Deployment", service)
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == service
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = _container(deploy)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] >= 10000
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp, "a writable /tmp"
    volume = next(v for v in pod["volumes"] if v["name"] == tmp[0]["name"])
    assert "emptyDir" in volume
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)


@pytest.mark.parametrize("overlay", ALL_BUILDS)
@pytest.mark.parametrize("service", services())
def test_probes_ports_and_resources(overlay: str, service: str) -> None:
    docs = build(overlay)
    deploy = one(docs, "Deployment", service)
    c = _container(deploy)
    assert c["command"] == ["python", "-m", f"switchboard.{service}"]
    port = next(p for p in c["ports"] if p["name"] == "http")
    config = _config(docs, deploy)
    assert str(port["containerPort"]) == config["SWITCHBOARD_HTTP_PORT"]
    ops = next(p for p in c["ports"] if p["name"] == "ops")
    assert str(ops["containerPort"]) == config["SWITCHBOARD_OPS_PORT"]
    assert config["SWITCHBOARD_HTTP_HOST"] == "0.0.0.0"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    svc = one(docs, "Service", service)
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    grace = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(config["SWITCHBOARD_SHUTDOWN_GRACE_S"]) + 5, "room to drain"
    rolling = deploy["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, "rolling updates without downtime"
    if overlay != "base":
        assert ":" in c["image"] or "@sha256:" in c["image"], "overlays pin the image"


@pytest.mark.parametrize("overlay", ALL_BUILDS)
@pytest.mark.parametrize("service", services())
def test_settings_come_from_configmap_and_secret_references(
    overlay: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the settings class needs is there; secrets only by reference; it all loads."""
    cls = SETTINGS[service]
    docs = build(overlay)
    deploy = one(docs, "Deployment", service)
    config = _config(docs, deploy)
    secrets = _secret_refs(deploy)
    assert not find(docs, "Secret"), "no Secret is shipped: the operator creates them"
    provided = {env_field(cls, n) for n in [*config, *secrets]}
    assert needed_in_container(cls) <= provided, sorted(needed_in_container(cls) - provided)
    for name in config:
        field = env_field(cls, name)
        assert field is not None, f"{name} sets no setting of {service}"
        assert not is_secret_field(cls, field), f"{name} is a secret: use a secretKeyRef"
    for name, (secret, _) in secrets.items():
        assert env_field(cls, name) is not None, f"{name} sets no setting of {service}"
        assert secret == f"switchboard-{service}"
    assert config["SWITCHBOARD_PROVISION"] == "false", "NACK provisions in Kubernetes"
    assert config["SWITCHBOARD_NATS_USER"] == service, "each service has its own NATS user"
    assert config["SWITCHBOARD_NATS_URL"] == NATS_URL
    assert "SWITCHBOARD_NATS_PASSWORD" in secrets
    # without it the service keys personal identifiers with the public development pepper
    assert "SWITCHBOARD_IDENTITY_PEPPER" in secrets
    assert ("SWITCHBOARD_DATABASE_URL" in secrets) == uses_postgres(cls)

    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    dummies = {
        "api_id": "12345",
        "encryption_keys": "k1:" + "A" * 43 + "=",
        "api_keys": "test-key-0001=demo",
        "api_key_pepper": "dummy-pepper-0123456789",
        "identity_pepper": "dummy-identity-pepper-0123456789",
        "database_url": "postgresql://switchboard:x@switchboard-pg-rw.postgres:5432/switchboard",
    }
    for name in secrets:
        monkeypatch.setenv(name, dummies.get(env_field(cls, name) or "", "dummy-secret"))
    try:
        settings = load_settings(cls)
    except ConfigError as exc:
        pytest.fail(f"{service} in {overlay}: {exc}")
    assert settings.provision is False


# Telegram's networks as published at https://core.telegram.org/resources/cidr.txt: the only
# addresses the MTProto gateway reaches outside the cluster (deploy/k8s/base/mtproto).
TELEGRAM_CIDRS = {
    "91.108.56.0/22", "91.108.4.0/22", "91.108.8.0/22", "91.108.16.0/22", "91.108.12.0/22",
    "149.154.160.0/20", "91.105.192.0/23", "91.108.20.0/22", "185.76.151.0/24",
    "2001:b28:f23d::/48", "2001:b28:f23f::/48", "2001:67c:4e8::/48", "2001:b28:f23c::/48",
    "2a0a:f280::/32",
}  # fmt: skip
PRIVATE = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
              "fc00::/7")
]  # fmt: skip


PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _egress_reach(spec: dict[str, Any], service: str) -> dict[str, set[int]]:
    """Where a policy lets its pods go: namespace -> ports, plus "internet" (public addresses,
    any) and "telegram" (exactly Telegram's networks)."""
    reach: dict[str, set[int]] = {}
    for rule in spec["egress"]:
        ports = {p["port"] for p in rule["ports"]}
        assert rule.get("to"), f"{service}: an egress rule without `to` opens everything"
        blocks = [peer["ipBlock"] for peer in rule["to"] if "ipBlock" in peer]
        if blocks and any(b["cidr"] == "0.0.0.0/0" for b in blocks):
            assert len(blocks) == len(rule["to"]) == 1
            assert "10.0.0.0/8" in blocks[0]["except"], "not the cluster network"
            reach.setdefault("internet", set()).update(ports)
        elif blocks:
            assert len(blocks) == len(rule["to"]), f"{service}: ipBlocks mixed with pods"
            cidrs = {b["cidr"] for b in blocks}
            assert cidrs == TELEGRAM_CIDRS, f"{service}: {sorted(cidrs ^ TELEGRAM_CIDRS)}"
            for cidr in cidrs:
                net = ipaddress.ip_network(cidr)
                assert not any(net.overlaps(p) for p in PRIVATE if p.version == net.version)
            reach.setdefault("telegram", set()).update(ports)
        else:
            for peer in rule["to"]:
                ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                assert peer["podSelector"]["matchLabels"], "a namespace's pods, not all"
                reach.setdefault(ns, set()).update(ports)
    return reach


@pytest.mark.parametrize("overlay", ALL_BUILDS)
def test_network_policies(overlay: str) -> None:
    docs = build(overlay)
    deny = one(docs, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    dns = one(docs, "NetworkPolicy", "allow-dns")
    assert {p["port"] for r in dns["spec"]["egress"] for p in r["ports"]} == {53}
    for service in services():
        spec = one(docs, "NetworkPolicy", service)["spec"]
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
        expected = {"nats": {4222}}
        if uses_postgres(SETTINGS[service]):
            expected["postgres"] = {5432}
        # provider APIs (registering accounts; sends; downloading customers' files)
        if service in ("ingest", "outbound", "crm"):
            expected["internet"] = {443}
        if service == "mtproto":  # MTProto over TCP to Telegram's DCs, nothing else outside
            expected["telegram"] = {443, 80, 5222}
        assert _egress_reach(spec, service) == expected, service
        http_ports = [p["port"] for r in spec["ingress"] for p in r["ports"]]
        assert http_ports == ["http", "ops"], f"{service}: only the HTTP and ops ports are open"
        ops_rule = next(r for r in spec["ingress"] if r["ports"][0]["port"] == "ops")
        assert ops_rule["from"] == [PROMETHEUS], f"{service}: the ops port is Prometheus's only"


def test_mtproto_admin_api_is_not_reachable_from_outside_the_cluster() -> None:
    """Its API holds Telegram user accounts: pods of the cluster only, never ipBlocks."""
    spec = one(build("prod"), "NetworkPolicy", "mtproto")["spec"]
    for rule in spec["ingress"]:
        assert rule["from"], "an ingress rule without `from` admits the world"
        assert all("ipBlock" not in peer for peer in rule["from"])


AUTOSCALED = ("ingest", "outbound")


def test_hpa_for_ingest_and_outbound_and_it_owns_the_replicas() -> None:
    docs = build("base")
    hpas = {h["metadata"]["name"]: h for h in find(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == set(AUTOSCALED)
    for service in AUTOSCALED:
        target = hpas[service]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", service)
        assert "replicas" not in one(docs, "Deployment", service)["spec"]


# No HPA: mtproto spreads sessions by lease, not load; analytics' CPU follows the streams on
# the pod leading a projection, not the API load, and each pod holds a pool of connections.
FIXED_REPLICAS = ("crm", "mtproto", "analytics", "flows")


def test_dev_runs_single_replicas() -> None:
    docs = build("dev")
    for service in FIXED_REPLICAS:
        assert one(docs, "Deployment", service)["spec"]["replicas"] == 1, service
    for service in AUTOSCALED:
        hpa = one(docs, "HorizontalPodAutoscaler", service)["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 1), service
    assert {d["spec"]["replicas"] for d in find(docs, "Stream") + find(docs, "KeyValue")} == {1}


def test_prod_runs_replicas_spread_with_bigger_resources() -> None:
    prod, base = build("prod"), build("base")
    for service in FIXED_REPLICAS:
        assert one(prod, "Deployment", service)["spec"]["replicas"] >= 3, service
        assert one(base, "Deployment", service)["spec"]["replicas"] >= 2, "a standby"
    for service in AUTOSCALED:
        assert one(prod, "HorizontalPodAutoscaler", service)["spec"]["minReplicas"] >= 3
    assert {d["spec"]["replicas"] for d in find(prod, "Stream") + find(prod, "KeyValue")} == {3}
    for service in services():
        deploy = one(prod, "Deployment", service)
        pod = deploy["spec"]["template"]["spec"]
        terms = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": service
        }
        assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
        big = _container(deploy)["resources"]["requests"]
        small = _container(one(base, "Deployment", service))["resources"]["requests"]
        assert _millicores(big["cpu"]) > _millicores(small["cpu"]), service


def _millicores(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


@pytest.mark.parametrize("overlay", ALL_BUILDS)
def test_grafana_dashboard_ships_for_the_sidecar(overlay: str) -> None:
    """deploy/grafana's dashboard is a ConfigMap Grafana's sidecar loads: the label it
    selects, a fixed name (no hash suffix to leave stale copies behind), the file as is."""
    docs = build(overlay)
    dashboards = [
        d for d in find(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert [d["metadata"]["name"] for d in dashboards] == ["grafana-dashboard-switchboard-business"]
    (cm,) = dashboards
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = DEPLOY / "grafana/switchboard-business.json"
    assert cm["data"] == {source.name: source.read_text()}
    dashboard = json.loads(cm["data"][source.name])
    assert dashboard["uid"] == "switchboard-business"
    assert dashboard["__inputs"] == [], "provisioned as is: no import-time inputs"


@pytest.mark.parametrize("overlay", ALL_BUILDS)
def test_analytics_funnel_stages_are_the_crm_s(overlay: str) -> None:
    """Analytics orders the funnel by the CRM's stages: the two settings agree."""
    docs = build(overlay)
    crm = _config(docs, one(docs, "Deployment", "crm"))
    analytics = _config(docs, one(docs, "Deployment", "analytics"))
    assert analytics["SWITCHBOARD_ANALYTICS_LEAD_STAGES"] == crm["SWITCHBOARD_CRM_LEAD_STAGES"]
    assert "SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL" not in analytics, "off until you set one"


def test_namespace_enforces_restricted_pod_security() -> None:
    ns = one(build("base"), "Namespace", NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
