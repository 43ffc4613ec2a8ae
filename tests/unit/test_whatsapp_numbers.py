"""One Meta app sends the changes of every number it serves to the one callback URL it has
(Chatwoot and pywa route them by ``value.metadata.phone_number_id``): the webhook groups a
body's changes by the number each names, and pywa, the outside judge, agrees: a client of
each number takes exactly the changes of its group and filters out every other one."""

from __future__ import annotations

import json
from typing import Any

import orjson
from pywa import WhatsApp
from pywa.types.base_update import RawUpdate

from switchboard.events.catalog.common import Channel
from switchboard.ingest.webhooks import whatsapp_numbers, whatsapp_targets
from switchboard.runtime.accounts import Account

A, B, X = "106540352242922", "106540352242933", "106540352242999"


def change(number: str | None, wamid: str) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "contacts": [{"profile": {"name": "Ada"}, "wa_id": "16505551234"}],
        "messages": [
            {"from": "16505551234", "id": wamid, "timestamp": "1763640000", "type": "text",
             "text": {"body": f"to {number}"}},
        ],
    }  # fmt: skip
    if number is not None:
        value["metadata"] = {"display_phone_number": "15550001111", "phone_number_id": number}
    return {"field": "messages", "value": value}


BODY = {
    "object": "whatsapp_business_account",
    "entry": [
        {"id": "WABA1", "changes": [change(A, "wamid.a1"), change(B, "wamid.b1")]},
        {"id": "WABA2", "changes": [change(X, "wamid.x1"), change(B, "wamid.b2")]},
    ],
}


def routed_by_pywa(phone_id: str, entry_id: str, one: dict[str, Any]) -> bool:
    """Whether a pywa client of ``phone_id`` takes the change (pywa reads one per update)."""
    wa = WhatsApp(phone_id=phone_id, token="t", server=None, verify_token=None)
    payload = {"object": BODY["object"], "entry": [{"id": entry_id, "changes": [one]}]}
    raw = RawUpdate(json.dumps(payload).encode(), hmac_header=None, update_hash="judge")
    return wa._get_handler_type(raw) is not None


def test_the_changes_are_grouped_by_their_number_as_pywa_routes_them() -> None:
    groups = whatsapp_numbers(BODY)
    assert sorted(groups, key=str) == sorted([A, B, X])
    assert [c["value"]["messages"][0]["id"] for e in groups[B]["entry"] for c in e["changes"]] == [
        "wamid.b1", "wamid.b2",
    ]  # fmt: skip
    assert [e["id"] for e in groups[B]["entry"]] == ["WABA1", "WABA2"]
    for number, part in groups.items():
        for entry in part["entry"]:
            for one in entry["changes"]:
                assert number is not None
                assert routed_by_pywa(number, entry["id"], one)
                for other in {A, B, X} - {number}:
                    assert not routed_by_pywa(other, entry["id"], one)


def _wa(account_id: str, number: str, secret: str, workspace: str) -> Account:
    return Account(
        channel=Channel.WHATSAPP, id=account_id, workspace_id=workspace,
        settings={"phone_number_id": number}, secrets={"app_secret": secret},
    )  # fmt: skip


def test_each_number_goes_to_its_account_of_the_same_app_and_no_other() -> None:
    mine = _wa("wa-a", A, "s", "demo")
    theirs = _wa("wa-b", B, "s", "other")
    other_app = _wa("wa-x", X, "not-s", "third")  # its number, another app: not proven
    accounts = {a.settings["phone_number_id"]: a for a in (mine, theirs, other_app)}
    body = orjson.dumps(BODY)
    targets = whatsapp_targets(mine, body, "wa:batch:1", accounts.get)
    assert [t.id for t, _, _ in targets] == ["wa-a", "wa-b"]
    parts = {t.id: orjson.loads(b) for t, _, b in targets}
    ids = {k: [c["value"]["messages"][0]["id"] for e in p["entry"] for c in e["changes"]]
           for k, p in parts.items()}  # fmt: skip
    assert ids == {"wa-a": ["wamid.a1"], "wa-b": ["wamid.b1", "wamid.b2"]}
    assert [r for _, r, _ in targets] == ["wa:wamid.a1", targets[1][1]]
    assert targets[1][1].startswith("wa:batch:")


def test_a_body_of_the_account_s_own_number_is_stored_as_it_came() -> None:
    mine = _wa("wa-a", A, "s", "demo")
    changes = [change(A, "wamid.a1"), change(None, "wamid.n")]
    own = {"object": BODY["object"], "entry": [{"id": "W", "changes": changes}]}
    body = json.dumps(own).encode()  # not re-serialized: the signed bytes stay
    assert whatsapp_targets(mine, body, "wa:batch:2", {}.get) == [(mine, "wa:batch:2", body)]
    unset = Account(channel=Channel.WHATSAPP, id="old", secrets={"app_secret": "s"})
    whole = orjson.dumps(BODY)  # an account without a number: everything, as before
    assert whatsapp_targets(unset, whole, "wa:batch:3", {}.get) == [(unset, "wa:batch:3", whole)]
