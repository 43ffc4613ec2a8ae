"""Fuzzing the event decoder: whatever arrives on the bus (garbage bytes, broken headers,
golden payloads with fields dropped, retyped or added), decoding either yields a valid model
or raises :class:`DecodeError` with a reason, which consumers turn into a DLQ entry. Any other
exception would be a crash loop in every consumer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.events import DecodeError, decode_message, model_for
from switchboard.events.catalog import conv  # noqa: F401  (registers the catalog)

GOLDEN = Path(__file__).resolve().parents[1] / "contract" / "golden"
CASES: list[tuple[str, int, dict[str, Any]]] = [
    (d.name.rsplit(".v", 1)[0], int(d.name.rsplit(".v", 1)[1]), json.loads(f.read_text()))
    for d in sorted(GOLDEN.iterdir())
    if d.is_dir()
    for f in sorted(d.glob("*.json"))
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def headers_for(name: str, version: int) -> dict[str, str]:
    return {
        "ce-id": "fuzz-1",
        "ce-type": f"switchboard.{name}.v{version}",
        "ce-source": "fuzz",
        "ce-specversion": "1.0",
        "ce-time": "2026-11-21T07:00:00Z",
    }


def mutate(payload: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Drop, retype or add one field at the top level or one level down."""
    out = json.loads(json.dumps(payload))
    target = out
    nested = [k for k, v in out.items() if isinstance(v, dict) and v]
    if nested and data.draw(st.booleans(), label="nested"):
        target = out[data.draw(st.sampled_from(nested), label="into")]
    action = data.draw(st.sampled_from(["drop", "retype", "add"]), label="action")
    if action == "add" or not target:
        target[data.draw(st.text(min_size=1, max_size=10), label="new key")] = data.draw(
            json_values
        )
    else:
        key = data.draw(st.sampled_from(sorted(target)), label="key")
        if action == "drop":
            del target[key]
        else:
            target[key] = data.draw(json_values, label="value")
    return out


def decodes_or_says_why(subject: str, headers: dict[str, str] | None, body: bytes) -> None:
    reason = ""
    try:
        decoded = decode_message(subject, headers, body)
    except DecodeError as exc:
        reason = str(exc) or "(empty)"
    if reason:
        assert reason != "(empty)", "a decode error names its reason"
        return
    # Whatever decodes is a valid model of the catalog, never a half-parsed object.
    type(decoded.model).model_validate(decoded.model.model_dump())


@pytest.mark.parametrize(
    ("name", "version", "payload"), CASES, ids=[f"{n}.v{v}" for n, v, _ in CASES]
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_golden_payloads_decode_or_fail_precisely(
    name: str, version: int, payload: dict[str, Any], data: st.DataObject
) -> None:
    model_for(name, version)  # the golden payload names a registered message
    body = json.dumps(mutate(payload, data)).encode()
    decodes_or_says_why(f"fuzz.{name}", headers_for(name, version), body)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    headers=st.none()
    | st.dictionaries(
        st.sampled_from(
            ["ce-id", "ce-type", "ce-source", "ce-specversion", "ce-time", "workspace-id", "x"]
        ),
        st.text(max_size=40),
    ),
    known=st.sampled_from(CASES),
    use_known_type=st.booleans(),
)
def test_arbitrary_bytes_and_headers_never_crash_the_decoder(
    body: bytes,
    headers: dict[str, str] | None,
    known: tuple[str, int, dict[str, Any]],
    use_known_type: bool,
) -> None:
    if use_known_type and headers is not None:
        headers = {
            **headers_for(known[0], known[1]),
            **{k: v for k, v in headers.items() if k == "x"},
        }
    decodes_or_says_why("fuzz.any", headers, body)
