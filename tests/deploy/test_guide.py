"""docs/deploy.md leaves no step implicit: every Secret the manifests reference is created in
it with every key, every generated NATS user gets a password, and the README points at it."""

from __future__ import annotations

import re

import pytest
import yaml

from switchboard.events.k8s import NACK_USER_SECRET, NATS_USERS_SECRET, nats_users
from tests.deploy.support import (
    GUIDE,
    NATS_VALUES,
    OVERLAYS,
    POSTGRES,
    ROOT,
    build,
    find,
    load_docs,
)


def _guide() -> str:
    return GUIDE.read_text()


def _create_commands() -> dict[str, str]:
    """Secret name -> its `kubectl create secret` command (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", _guide())
    found = {}
    for match in re.finditer(r"kubectl -n (\S+) create secret generic (\S+)([^\n]*)", text):
        found[match.group(2)] = match.group(0)
    return found


def _referenced_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, as referenced by everything we ship."""
    refs: dict[str, set[str]] = {}
    docs = [d for o in ("base", *OVERLAYS) for d in build(o)]
    for deploy in find(docs, "Deployment"):
        for c in deploy["spec"]["template"]["spec"]["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.setdefault(ref["name"], set()).add(ref["key"])
    for account in find(docs, "Account"):
        user = account["spec"]["user"]
        refs.setdefault(user["secret"]["name"], set()).update({user["user"], user["password"]})
    for cluster in load_docs(POSTGRES):
        if cluster["kind"] == "Cluster":
            secret = cluster["spec"]["bootstrap"]["initdb"]["secret"]["name"]
            refs.setdefault(secret, set()).update({"username", "password"})
    values = yaml.safe_load(NATS_VALUES.read_text())
    for env in values["container"]["env"].values():
        ref = env["valueFrom"]["secretKeyRef"]
        refs.setdefault(ref["name"], set()).add(ref["key"])
    return refs


def test_every_referenced_secret_is_created_by_the_guide() -> None:
    commands = _create_commands()
    refs = _referenced_secrets()
    assert {NATS_USERS_SECRET, NACK_USER_SECRET} <= set(refs)
    for name, keys in sorted(refs.items()):
        assert name in commands, f"docs/deploy.md never creates Secret {name}"
        for key in sorted(keys):
            assert f"--from-literal={key}=" in commands[name], f"{name}: key {key} missing"
        assert f"| `{name}` |" in _guide(), f"{name} missing from the Secrets table"


def test_every_nats_user_gets_a_password() -> None:
    command = _create_commands()[NATS_USERS_SECRET]
    for user in ["sys", *nats_users()]:
        assert f"--from-literal={user}=" in command, user


def test_encryption_key_recipe_makes_a_valid_keyring() -> None:
    """The guide's one-liner produces what IngestSettings accepts."""
    from switchboard.runtime.settings import parse_keyring

    recipe = "import base64,os;print('k1:'+base64.b64encode(os.urandom(32)).decode())"
    assert recipe in _guide()
    namespace: dict[str, object] = {}
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(recipe, namespace)  # the documented command itself
    assert len(parse_keyring(out.getvalue().strip())["k1"]) == 32


@pytest.mark.parametrize(
    "needle",
    [
        "--control-loop",  # NACK reconciles KeyValues only in control-loop mode
        "-f deploy/nats/values.yaml",
        "kubectl apply -f deploy/postgres/cluster.yaml",
        "kubectl apply -k deploy/k8s/overlays/prod",
        "docker build -f docker/Dockerfile",
        "switchboard crm rebuild",
        "accounts reencrypt",
        "stream backup",
        "ScheduledBackup",
        "maxUnavailable: 0",
        "advisory lock",
        "switchboard-mtproto login",  # Telegram user accounts: how they get in
        "switchboard-mtproto reencrypt",
        "pg_dump -d switchboard -n mtproto",  # the sessions are in Postgres, not in a stream
        "core.telegram.org/resources/cidr.txt",  # where the egress list comes from
        "mtproto-send-<session>",  # the runtime durables' grant, explained
        "switchboard analytics rebuild",
        "conversion_ledger",  # the analytics table no replay rebuilds: backed up
        "pg_dump -d switchboard -t analytics.conversion_ledger",
        "grafana.sidecar.dashboards.searchNamespace=ALL",  # the dashboard ConfigMap is found
        "SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL",
        "conversion_events",  # a workspace's own pixel
        "SWITCHBOARD_ANALYTICS_CONVERSIONS=false",  # a ledger restore decides nothing
    ],
)
def test_guide_covers(needle: str) -> None:
    assert needle in _guide()


def test_readme_links_the_guide_under_deploying() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    assert "docs/deploy.md" in section
