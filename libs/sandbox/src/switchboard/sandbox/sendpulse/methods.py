"""What each SendPulse API call does once the caller is authenticated and within limits.

Each function takes the account, the decoded parameters and the sandbox time, changes the
state, and returns the JSON result; failures raise `SendPulseError`.
"""

from __future__ import annotations

from typing import Any

from switchboard.sandbox.sendpulse.errors import (
    EMPTY_CONTENT,
    NO_DATA,
    NO_RECIPIENTS,
    NO_SENDER,
    api_error,
)
from switchboard.sandbox.sendpulse.params import flag, json_param
from switchboard.sandbox.sendpulse.state import (
    SendPulseState,
    SentEmail,
    SentSms,
    SpAccount,
    SpAddressBook,
    SpContact,
)
from switchboard.sandbox.sendpulse.validation import (
    as_list,
    base64_html,
    email_address,
    phone_number,
    sms_sender,
)

_EMAIL_KEYS = {"html", "text", "template", "subject", "from", "to"}


def add_emails(
    state: SendPulseState, account: SpAccount, book_id: str, params: dict[str, Any], at: float
) -> dict[str, Any]:
    """`POST /addressbooks/{id}/emails`: upsert contacts; one bad address rejects all."""
    book = state.book_of(account, book_id)
    items = as_list(json_param(params, "emails"), "emails")
    contacts: list[SpContact] = []
    for index, item in enumerate(items):
        address: object
        variables: object
        if isinstance(item, str):
            address, variables = item, {}
        elif isinstance(item, dict):
            address, variables = item.get("email"), item.get("variables") or {}
        else:
            raise api_error(f"emails[{index}] must be an object with an email")
        if not isinstance(variables, dict):
            raise api_error(f"emails[{index}].variables must be an object")
        email = email_address(address, f"emails[{index}]")
        contacts.append(SpContact(email, dict(variables), at))
    for contact in contacts:
        known = book.contacts.get(contact.email)
        if known is not None:
            known.variables.update(contact.variables)
        else:
            book.contacts[contact.email] = contact
    return {"result": True}


def list_emails(book: SpAddressBook, params: dict[str, Any]) -> list[dict[str, Any]]:
    """`GET /addressbooks/{id}/emails?limit&offset`: the contacts, oldest first."""
    limit = _count(params.get("limit"), "limit") or 100
    offset = _count(params.get("offset"), "offset") or 0
    ordered = list(book.contacts.values())[offset : offset + min(limit, 100)]
    return [contact.to_json() for contact in ordered]


def smtp_send(
    state: SendPulseState, account: SpAccount, params: dict[str, Any], at: float
) -> dict[str, Any]:
    """`POST /smtp/emails`: validate the message and record it as sent."""
    email = json_param(params, "email")
    if not isinstance(email, dict) or not email:
        raise api_error("No data: email is empty", NO_DATA)
    html_raw, text, template = email.get("html"), email.get("text"), email.get("template")
    if not html_raw and not text and not template:
        raise api_error("Empty email message content field", EMPTY_CONTENT)
    html = base64_html(html_raw) if html_raw else None
    if text is not None and not isinstance(text, str):
        raise api_error("Field text must be a string")
    if template is not None and (not isinstance(template, dict) or not template.get("id")):
        raise api_error("Field template must be an object with an id")
    subject = email.get("subject")
    if not template and (not isinstance(subject, str) or not subject.strip()):
        raise api_error("Empty email subject")
    sender = email.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        raise api_error("Sender email address missing", NO_SENDER)
    from_email = email_address(sender.get("email"), "from")
    recipients = email.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise api_error("Can't find recipients addresses", NO_RECIPIENTS)
    to: list[dict[str, Any]] = []
    for index, item in enumerate(recipients):
        if not isinstance(item, dict):
            raise api_error(f"to[{index}] must be an object with an email")
        to.append(
            {"name": item.get("name"), "email": email_address(item.get("email"), f"to[{index}]")}
        )
    record = SentEmail(
        id=state.email_id(),
        account=account.client_id,
        subject=subject if isinstance(subject, str) else None,
        sender={"name": sender.get("name"), "email": from_email},
        to=to,
        html=html,
        text=text,
        template=template,
        at=at,
        extra={k: v for k, v in email.items() if k not in _EMAIL_KEYS},
    )
    state.emails.append(record)
    return {"result": True, "id": record.id}


def sms_send(
    state: SendPulseState, account: SpAccount, params: dict[str, Any], at: float
) -> dict[str, Any]:
    """`POST /sms/send`: validate sender, phones and text; answer with counters."""
    sender = sms_sender(params.get("sender"))
    phones = [phone_number(p) for p in as_list(json_param(params, "phones"), "phones")]
    body = params.get("body")
    if not isinstance(body, str) or not body.strip():
        raise api_error("Empty SMS text", NO_DATA)
    transliterate = flag(params.get("transliterate"), "transliterate")
    date = params.get("date")
    unique = list(dict.fromkeys(phones))
    record = SentSms(
        campaign_id=state.campaign_id(),
        account=account.client_id,
        sender=sender,
        phones=unique,
        body=body,
        transliterate=transliterate,
        date=str(date) if date not in (None, "") else None,
        at=at,
    )
    state.sms.append(record)
    return {
        "result": True,
        "campaign_id": record.campaign_id,
        "counters": {"exceptions": 0, "sends": len(unique)},
    }


def _count(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise api_error(f"Parameter {name} must be an integer") from exc
    if number < 0:
        raise api_error(f"Parameter {name} cannot be negative")
    return number
