"""WhatsApp Cloud webhook bodies as Meta sends them, for the normalizer's own table and the
one pywa judges: one business number, one envelope, the parts both tables write alike."""

from __future__ import annotations

from typing import Any

PHONE_ID = "106540352242922"  # the business number's phone_number_id
TS = "1763640000"  # when the sample messages and statuses were sent (unix seconds)
# Meta's error on a message whose type it cannot render (the message's type is `unsupported`).
UNKNOWN_TYPE = {"code": 131051, "title": "Message type unknown", "message": "Message type unknown"}


def value(**parts: Any) -> dict[str, Any]:
    """A change's ``value`` for the business number, holding ``parts`` (messages, contacts…)."""
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
        **parts,
    }


def change(val: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    return {"value": val, "field": field}


def body(*changes: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    """A webhook body: ``changes`` in one entry (or repeated over several entries)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": f"10223344556677{e}", "changes": list(changes)} for e in range(entries)],
    }


def interactive(itype: str, **answer: Any) -> dict[str, Any]:
    """A message's ``interactive`` object of type ``itype`` (``button_reply``, …)."""
    return {"type": itype, itype: answer}
