"""The gateway's metrics by method and its sessions in ``/health/integrations``, with the
real Telethon adapter against the wire fake: what an operator scrapes after a session
connected and was probed."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from switchboard.runtime.testing import eventually

from .mtproto_support import OPERATOR, world


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_by_method_and_sessions_in_health(nats_url: str, postgres_url: str) -> None:
    async with world(nats_url, postgres_url) as w:
        reader, _ = w.fake.add_user("15550707070")
        issued = w.box.mtproto_wire.issue_session(reader)
        base = await w.gateway(adapter="telethon", instance_id="obs")
        await w.import_session(base, "observed", issued["session"])
        async with httpx.AsyncClient(base_url=base, headers=OPERATOR, timeout=30) as ops:

            async def healthy() -> dict[str, object] | None:
                r = await ops.get("/health/integrations")
                assert r.status_code == 200, r.text
                entry = r.json()["integrations"].get("mtproto/observed")
                if entry and entry["state"] == "connected" and entry["probe"]["ok"]:
                    return dict(entry)
                return None

            entry = await eventually(healthy, timeout=30, message="the session in health")
            assert entry["account_status"] == "active"
            assert entry["proxy"] is None
            r = await ops.get("/metrics")
            assert r.status_code == 200
            samples = _samples(r.text)
        # the connect's getState and the probe's getUsers, each timed under its name
        for method in ("updates.getState", "users.getUsers"):
            key = ("switchboard_mtproto_rpc_seconds_count", (("method", method),))
            assert samples.get(key, 0) >= 1, method
        assert samples[("switchboard_mtproto_sessions_connected", ())] >= 1
        assert ("switchboard_mtproto_update_queue_depth", ()) in samples
        async with httpx.AsyncClient(base_url=base, timeout=30) as anon:
            r = await anon.get("/health/integrations")
            assert r.status_code == 401  # names accounts: the operator's only
