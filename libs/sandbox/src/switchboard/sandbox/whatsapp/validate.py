"""Validation of `POST /{version}/{phone_number_id}/messages` bodies, as the Cloud API checks.

Errors are Graph code 100 with a message naming the parameter the way Meta does
(`text['body']`, `template['language']['code']`, `interactive['action']['buttons']`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from switchboard.sandbox.graph import GraphError
from switchboard.sandbox.whatsapp.config import WhatsAppConfig
from switchboard.sandbox.whatsapp.errors import invalid, required
from switchboard.sandbox.whatsapp.state import digits

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
# A business-scoped user id: country code and digits (`US.1349...`), or a parent BSUID
# shared across portfolios (`CC.ENT.<digits>`).
BSUID = re.compile(r"^(?:[A-Z]{2}|CC\.ENT)\.\d{1,40}$")
MESSAGE_TYPES = (
    "text",
    "template",
    *MEDIA_TYPES,
    "location",
    "contacts",
    "interactive",
    "reaction",
)
CAPTIONED = ("image", "video", "document")
INTERACTIVE_TYPES = ("button", "list", "cta_url", "product", "product_list", "flow")
COMPONENT_TYPES = ("header", "body", "footer", "button", "carousel", "limited_time_offer")


@dataclass(frozen=True)
class SendRequest:
    """A validated send: recipient as given and as wa_id, type and its object."""

    to: str
    wa_id: str
    type: str
    content: dict[str, Any]
    reply_to: str | None

    @property
    def free_form(self) -> bool:
        """Everything but templates needs an open customer-service window."""
        return self.type != "template"


def _obj(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        raise required(name)
    if not isinstance(value, dict):
        raise invalid(name, "must be a JSON object.")
    return value


def _text(data: dict[str, Any], key: str, name: str, limit: int | None = None) -> str:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise required(name)
    if not isinstance(value, str):
        raise invalid(name, "must be a string.")
    if limit is not None and len(value) > limit:
        raise invalid(name, f"must be at most {limit} characters long.")
    return value


def _optional_text(data: dict[str, Any], key: str, name: str, limit: int) -> None:
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        raise invalid(name, "must be a string.")
    if len(value) > limit:
        raise invalid(name, f"must be at most {limit} characters long.")


def _list(value: Any, name: str, low: int, high: int) -> list[Any]:
    if value is None:
        raise required(name)
    if not isinstance(value, list):
        raise invalid(name, "must be an array.")
    if not low <= len(value) <= high:
        raise invalid(name, f"must have between {low} and {high} elements.")
    return value


def check_text(body: dict[str, Any], config: WhatsAppConfig) -> None:
    text = _obj(body.get("text"), "text")
    _text(text, "body", "text['body']", config.max_text)
    preview = text.get("preview_url")
    if preview is not None and not isinstance(preview, bool):
        raise invalid("text['preview_url']", "must be a boolean.")


def check_template(body: dict[str, Any], config: WhatsAppConfig) -> None:
    template = _obj(body.get("template"), "template")
    _text(template, "name", "template['name']", 512)
    language = _obj(template.get("language"), "template['language']")
    _text(language, "code", "template['language']['code']", 15)
    components = template.get("components")
    if components is None:
        return
    if not isinstance(components, list):
        raise invalid("template['components']", "must be an array.")
    for index, component in enumerate(components):
        name = f"template['components'][{index}]"
        component = _obj(component, name)
        kind = _text(component, "type", f"{name}['type']")
        if kind.lower() not in COMPONENT_TYPES:
            raise invalid(f"{name}['type']", f"must be one of {{{', '.join(COMPONENT_TYPES)}}}.")
        if kind.lower() == "button":
            _text(component, "sub_type", f"{name}['sub_type']")
            if component.get("index") is None:
                raise required(f"{name}['index']")
        parameters = component.get("parameters")
        if parameters is not None and not isinstance(parameters, list):
            raise invalid(f"{name}['parameters']", "must be an array.")
        for position, parameter in enumerate(parameters or []):
            item = f"{name}['parameters'][{position}]"
            _text(_obj(parameter, item), "type", f"{item}['type']")


def check_media(body: dict[str, Any], kind: str, config: WhatsAppConfig) -> None:
    media = _obj(body.get(kind), kind)
    has_id, has_link = bool(media.get("id")), bool(media.get("link"))
    if has_id == has_link:
        raise invalid(kind, "must have exactly one of 'id' or 'link'.")
    if has_link:
        link = str(media["link"])
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise invalid(f"{kind}['link']", "must be a valid http or https URL.")
    if "caption" in media:
        if kind not in CAPTIONED:
            raise invalid(f"{kind}['caption']", f"is not supported for {kind} messages.")
        _optional_text(media, "caption", f"{kind}['caption']", config.max_caption)
    if "filename" in media and kind != "document":
        raise invalid(f"{kind}['filename']", f"is not supported for {kind} messages.")


def check_location(body: dict[str, Any], config: WhatsAppConfig) -> None:
    location = _obj(body.get("location"), "location")
    for key, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = location.get(key)
        if value is None:
            raise required(f"location['{key}']")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise invalid(f"location['{key}']", "must be a number.") from None
        if not -bound <= number <= bound:
            raise invalid(f"location['{key}']", f"must be between -{bound:g} and {bound:g}.")


def check_contacts(body: dict[str, Any], config: WhatsAppConfig) -> None:
    contacts = _list(body.get("contacts"), "contacts", 1, 257)
    for index, contact in enumerate(contacts):
        name = _obj(_obj(contact, f"contacts[{index}]").get("name"), f"contacts[{index}]['name']")
        _text(name, "formatted_name", f"contacts[{index}]['name']['formatted_name']")


def check_reaction(body: dict[str, Any], config: WhatsAppConfig) -> None:
    reaction = _obj(body.get("reaction"), "reaction")
    _text(reaction, "message_id", "reaction['message_id']")
    if not isinstance(reaction.get("emoji"), str):
        raise required("reaction['emoji']")  # "" removes a reaction, so only absence fails


def check_interactive(body: dict[str, Any], config: WhatsAppConfig) -> None:
    interactive = _obj(body.get("interactive"), "interactive")
    kind = _text(interactive, "type", "interactive['type']")
    if kind not in INTERACTIVE_TYPES:
        raise invalid("interactive['type']", f"must be one of {{{', '.join(INTERACTIVE_TYPES)}}}.")
    if kind in ("button", "list", "cta_url"):
        text_of = _obj(interactive.get("body"), "interactive['body']")
        _text(text_of, "text", "interactive['body']['text']", 1024)
    if isinstance(interactive.get("footer"), dict):
        _optional_text(interactive["footer"], "text", "interactive['footer']['text']", 60)
    action = _obj(interactive.get("action"), "interactive['action']")
    if kind == "button":
        buttons = _list(action.get("buttons"), "interactive['action']['buttons']", 1, 3)
        for index, button in enumerate(buttons):
            name = f"interactive['action']['buttons'][{index}]"
            reply = _obj(_obj(button, name).get("reply"), f"{name}['reply']")
            _text(reply, "id", f"{name}['reply']['id']", 256)
            _text(reply, "title", f"{name}['reply']['title']", 20)
    elif kind == "list":
        _text(action, "button", "interactive['action']['button']", 20)
        sections = _list(action.get("sections"), "interactive['action']['sections']", 1, 10)
        rows = 0
        for index, section in enumerate(sections):
            name = f"interactive['action']['sections'][{index}]"
            section_rows = _list(_obj(section, name).get("rows"), f"{name}['rows']", 1, 10)
            for position, row in enumerate(section_rows):
                row_name = f"{name}['rows'][{position}]"
                row = _obj(row, row_name)
                _text(row, "id", f"{row_name}['id']", 200)
                _text(row, "title", f"{row_name}['title']", 24)
                _optional_text(row, "description", f"{row_name}['description']", 72)
            rows += len(section_rows)
        if rows > 10:
            raise invalid("interactive['action']['sections']", "must have at most 10 rows.")


CHECKS = {
    "text": check_text,
    "template": check_template,
    "location": check_location,
    "contacts": check_contacts,
    "reaction": check_reaction,
    "interactive": check_interactive,
}


def check_send(body: dict[str, Any], config: WhatsAppConfig) -> SendRequest:
    """Validate a send body; GraphError (code 100) names the first bad parameter."""
    product = body.get("messaging_product")
    if product is None:
        raise required("messaging_product")
    if product != "whatsapp":
        raise invalid("messaging_product", "must be one of {WHATSAPP}.")
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise invalid("recipient_type", "must be one of {INDIVIDUAL}.")
    to = body.get("to")
    if to is None or str(to).strip() == "":
        raise required("to")
    if BSUID.match(str(to)):
        wa_id = str(to)  # a user known only by business-scoped user id (username adopted)
    else:
        wa_id = digits(str(to))
        if not 5 <= len(wa_id) <= 17:
            raise invalid("to", "must be a valid phone number, WhatsApp ID or BSUID.")
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        listed = ", ".join(t.upper() for t in sorted(MESSAGE_TYPES))
        raise invalid("type", f'must be one of {{{listed}}} - got "{kind}".')
    if kind in MEDIA_TYPES:
        check_media(body, kind, config)
    else:
        CHECKS[kind](body, config)
    reply_to = None
    if body.get("context") is not None:
        context = _obj(body["context"], "context")
        reply_to = _text(context, "message_id", "context['message_id']")
    content = body[kind]
    return SendRequest(
        to=str(to),
        wa_id=wa_id,
        type=kind,
        content=content if isinstance(content, dict) else {"items": content},
        reply_to=reply_to,
    )


def check_mark_read(body: dict[str, Any]) -> str:
    """`{"messaging_product":"whatsapp","status":"read","message_id":...}`: the message id."""
    if body.get("messaging_product") != "whatsapp":
        raise required("messaging_product")
    if body.get("status") != "read":
        raise invalid("status", "must be one of {READ}.")
    message_id = body.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise required("message_id")
    return message_id


__all__ = ["GraphError", "SendRequest", "check_mark_read", "check_send"]
