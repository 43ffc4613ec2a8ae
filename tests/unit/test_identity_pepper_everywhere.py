"""Every service keys with the deployment's identity pepper, not the development one: ingest
and the MTProto gateway seal under data subjects the CRM's erasure must find (it shreds
the keys of the subjects it computes with its pepper), and flows looks up claim keys and
keys its session ids."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.support.stack import service_env

from switchboard.analytics.app import create_app as create_analytics
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.app import create_app as create_crm
from switchboard.crm.settings import CrmSettings
from switchboard.flows.app import create_app as create_flows
from switchboard.flows.sessions import session_id
from switchboard.flows.settings import FlowsSettings
from switchboard.ingest.app import create_app as create_ingest
from switchboard.ingest.settings import IngestSettings
from switchboard.mtproto.app import create_app as create_mtproto
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.outbound.app import create_app as create_outbound
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime import identity, pii
from switchboard.runtime.settings import load_settings

PEPPER = "deployment-pepper-0123456789"
SERVICES: dict[str, tuple[Callable[[Any], Any], type[Any]]] = {
    "ingest": (create_ingest, IngestSettings),
    "crm": (create_crm, CrmSettings),
    "outbound": (create_outbound, OutboundSettings),
    "mtproto": (create_mtproto, MtprotoSettings),
    "analytics": (create_analytics, AnalyticsSettings),
    "flows": (create_flows, FlowsSettings),
}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    env = service_env(
        "nats://127.0.0.1:1",
        "postgresql://x@127.0.0.1:1/x",
        SWITCHBOARD_ADMIN_TOKEN="pepper-admin-token-1",
        SWITCHBOARD_IDENTITY_PEPPER=PEPPER,
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield
    identity.configure(identity.DEV_PEPPER)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_service_keys_with_the_deployments_pepper(service: str) -> None:
    identity.configure(identity.DEV_PEPPER)
    factory, settings = SERVICES[service]
    factory(load_settings(settings))
    parts = ("erased", "w", "whatsapp", "4917612345678")
    expected = hmac.new(PEPPER.encode(), "\x1f".join(parts).encode(), hashlib.sha256)
    # the data subject ingest seals a WhatsApp sender's fields under, and the CRM shreds
    assert pii.subject_id("w", "whatsapp", "4917612345678") == "s" + expected.hexdigest()[:32]


def test_flows_keys_its_session_ids_with_the_deployments_pepper() -> None:
    """A session id is a FLOWS subject token: keyed, not computable from the chat id."""
    identity.configure(identity.DEV_PEPPER)
    create_flows(load_settings(FlowsSettings))
    parts = ("session", "w", "whatsapp", "pn1", "4917612345678")
    expected = hmac.new(PEPPER.encode(), "\x1f".join(parts).encode(), hashlib.sha256)
    assert session_id(*parts[1:]) == "cs_" + expected.hexdigest()[:24]
