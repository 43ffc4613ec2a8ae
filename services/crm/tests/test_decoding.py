"""The projections' decoder reads the envelope straight from the headers: whatever the case
of their names, it must decode exactly what ``decode_message`` decodes (the same model, id,
workspace and time), or fall back to it for its precise error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from switchboard.crm.decoding import decode_event
from switchboard.events import decode_message
from switchboard.events.catalog import conv  # noqa: F401  (registers the catalog)

GOLDEN = Path(__file__).resolve().parents[3] / "tests" / "contract" / "golden"
CASES = [
    (d.name, f.read_bytes())
    for d in sorted(GOLDEN.iterdir())
    if d.is_dir()
    for f in sorted(d.glob("*.json"))[:1]
]
NAMES = {
    "ce-id": "ev-1",
    "ce-source": "test",
    "ce-specversion": "1.0",
    "ce-time": "2026-11-21T07:00:00Z",
    "workspace-id": "ws-a",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}


def recased(name: str, data: st.DataObject) -> str:
    flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if up else c for c, up in zip(name, flips, strict=True))


def message(subject: str, headers: dict[str, str], body: bytes) -> Msg:
    return Msg(_client=None, subject=subject, data=body, headers=headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(("type_dir", "body"), CASES, ids=[c[0] for c in CASES])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_any_case_of_the_header_names_decodes_as_decode_message_does(
    type_dir: str, body: bytes, data: st.DataObject
) -> None:
    name, version = type_dir.rsplit(".v", 1)
    lower: dict[str, Any] = {**NAMES, "ce-type": f"switchboard.{name}.v{version}"}
    headers = {recased(k, data): v for k, v in lower.items()}
    subject = "any.subject"
    expected = decode_message(subject, dict(headers), body)
    got = decode_event(message(subject, headers, body))
    env = expected.envelope
    assert (got.id, got.workspace_id, got.time, got.model) == (
        env.id,
        env.workspace_id,
        env.time,
        expected.model,
    )


def test_lower_case_names_with_one_in_another_case_keep_that_ones_value() -> None:
    """A producer that writes one name in another case is read as decode_message reads it:
    its workspace is not lost to the default one."""
    type_dir, body = next(c for c in CASES if c[0].startswith("conv.message_received"))
    name, version = type_dir.rsplit(".v", 1)
    headers = {**NAMES, "ce-type": f"switchboard.{name}.v{version}"}
    headers["Workspace-Id"] = headers.pop("workspace-id")
    got = decode_event(message("s", headers, body))
    assert got.workspace_id == "ws-a" == decode_message("s", headers, body).envelope.workspace_id
