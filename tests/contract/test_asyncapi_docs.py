"""``docs/asyncapi/<service>.json`` come from the services' ``Subscription`` declarations
through FastStream (``docs/generate_asyncapi.py``): regenerated, they must equal the files;
each service declares exactly the durables its topology lists; the channels it receives on
are its durables' filter subjects, those it sends on its topology's ``publishes``, and every
payload is a schema of the catalog (or says why it is none)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from tests.support.scripts import load_script

from switchboard.events.topology import SERVICES
from switchboard.runtime import subscribers

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    return load_script("docs/generate_asyncapi.py", "generate_asyncapi")


def test_the_asyncapi_documents_are_up_to_date() -> None:
    assert _generator().main(["--check"]) == 0, "run uv run python docs/generate_asyncapi.py"


def test_the_check_bites_on_a_stale_document(tmp_path: Path) -> None:
    gen = _generator()
    gen.OUT = tmp_path
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    doc = tmp_path / "flows.json"
    doc.write_text(doc.read_text().replace("flows-timers", "flows-timer"))
    (tmp_path / "gone.json").write_text("{}")
    assert gen.main(["--check"]) == 1


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_each_service_declares_its_topology_s_durables(service: str) -> None:
    topo = next(s for s in SERVICES if s.name == service)
    declared = [sub.durable for sub in subscribers.declared(service)]
    assert declared == list(topo.durables)


def test_every_module_that_declares_subscriptions_is_named_by_the_topology() -> None:
    """A module with ``SUBSCRIPTIONS`` that no service's ``declared_in`` names would be
    served but missing from the AsyncAPI documents and the deployment checks."""
    named = {m for svc in SERVICES for m in svc.declared_in}
    found = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts[3:])  # services/<svc>/src/...
        for path in ROOT.glob("services/*/src/switchboard/**/*.py")
        if re.search(r"^SUBSCRIPTIONS\b", path.read_text(), flags=re.MULTILINE)
    }
    assert found == named


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_channels_are_the_durables_filters_and_payloads_the_catalog_s(service: str) -> None:
    doc = json.loads((ROOT / "docs" / "asyncapi" / f"{service}.json").read_text())
    topo = next(s for s in SERVICES if s.name == service)
    filters = sorted(f for d in topo.durables for f in d.filter_subjects)
    channels = doc.get("channels", {}).values()
    assert sorted(c["address"] for c in channels if "x-durable" in c) == filters
    sent = sorted(c["address"] for c in channels if "x-durable" not in c)
    assert sent == sorted(topo.publishes)
    base = ROOT / "docs" / "asyncapi"
    for message in doc.get("components", {}).get("messages", {}).values():
        payload = message["payload"]
        address = doc["channels"][message["title"].rsplit(":", 1)[0]]["address"]
        if address in ("raw.>", "dlq.>"):
            assert payload["contentEncoding"] == "binary"  # not catalog messages
            continue
        refs = [r["$ref"] for r in payload["oneOf"]]
        assert refs, message["title"]  # every filter receives some message of the catalog
        for ref in refs:
            assert (base / ref).resolve().is_file(), ref
