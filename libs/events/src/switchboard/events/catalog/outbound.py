"""Outbound commands: what to send, to whom, through which account (stream ``OUTBOUND``)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from switchboard.events.base import Command
from switchboard.events.catalog.common import Channel, Value
from switchboard.events.catalog.routing import ChannelRouted, ProviderRouted
from switchboard.events.registry import register


class Priority(StrEnum):
    """Lanes: conversational replies overtake bulk broadcasts."""

    HIGH = "high"
    NORMAL = "normal"
    BULK = "bulk"


class MediaSource(Value):
    """Exactly one of a provider file id, an HTTP URL, inline bytes (base64) or the id of a
    file uploaded to outbound (``POST /v1/uploads``; the bytes stay in object storage and
    never travel in a stream)."""

    file_id: str | None = None
    url: str | None = None
    data_base64: str | None = None
    upload_id: str | None = Field(
        None,
        pattern=r"^up_[0-9a-f]{40}$",
        description="a file uploaded to outbound by the same workspace",
    )
    file_name: str | None = None
    mime_type: str | None = None
    size: int | None = Field(
        None,
        ge=1,
        description="the file's size in bytes, where a provider needs it in the message "
        "(Viber's video and file messages); POST /v1/messages asks a URL for it when absent",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [x for x in (self.file_id, self.url, self.data_base64, self.upload_id) if x]
        if len(given) != 1:
            raise ValueError(
                "media source needs exactly one of file_id, url, data_base64, upload_id"
            )
        return self


class Button(Value):
    text: str = Field(min_length=1)
    callback_data: str | None = Field(None, max_length=64)
    url: str | None = None


class Keyboard(Value):
    """Buttons under a message (inline) or replacing the user's keyboard (reply)."""

    type: Literal["inline", "reply", "remove"] = "inline"
    rows: tuple[tuple[Button, ...], ...] = ()
    one_time: bool = False


class OutText(Value):
    kind: Literal["text"] = "text"
    text: str = Field(min_length=1)
    parse_mode: Literal["MarkdownV2", "HTML", "Markdown"] | None = None
    preview_url: bool = False


class OutMedia(Value):
    kind: Literal["photo", "video", "audio", "voice", "document", "animation", "sticker"]
    source: MediaSource
    caption: str | None = None
    parse_mode: Literal["MarkdownV2", "HTML", "Markdown"] | None = Field(
        None,
        description="the caption's markup, as a text's: a Telegram bot's parse mode, a user "
        "account's message entities; WhatsApp and Viber read none",
    )


class OutMediaGroup(Value):
    kind: Literal["media_group"] = "media_group"
    items: tuple[OutMedia, ...] = Field(min_length=2, max_length=10)


class OutTemplate(Value):
    """A pre-approved template (WhatsApp): allowed outside the 24 h window."""

    kind: Literal["template"] = "template"
    name: str = Field(min_length=1)
    language: str = Field(min_length=2)
    components: tuple[dict[str, Any], ...] = ()


class OutLocation(Value):
    kind: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


OutContent = Annotated[
    OutText | OutMedia | OutMediaGroup | OutTemplate | OutLocation, Field(discriminator="kind")
]


# A phone number as a caller may write it: "+1 (555) 123-4567", "15551234567".
_PHONE = re.compile(r"\+?[\d\s().-]+")


def recipient_key(channel: Channel | str, recipient: str) -> str:
    """Who a send's ``recipient`` is, however it is written: a WhatsApp phone is its digits
    (Meta's ``wa_id``: "+1 555 123 4567" and 15551234567 are one person, one chat, one
    ordering lane and one pair limit); anything else (a BSUID, a chat id) as it is."""
    if channel == Channel.WHATSAPP and _PHONE.fullmatch(recipient):
        return "".join(c for c in recipient if c.isdigit()) or recipient
    return recipient


def chat_bucket(recipient: str) -> str:
    """The last token of a send's subject: one of 65,536 buckets of its recipient. Outbound
    keeps a chat's sends in the order of the stream across instances by looking for an
    earlier command on the same subject; a bucket shared by two chats only makes one wait
    for the other. So few bits say nothing of who the recipient is (the body names them)."""
    return hashlib.blake2b(recipient.encode(), digest_size=2).hexdigest()


@register("outbound.send", 1)
class SendMessage(Command):
    """Send one message through a channel account. ``message_id`` is the caller's idempotency
    key within the publishing workspace: the same id is sent at most once (barring a crash
    mid-call, see docs/security.md); another workspace's same id is another message."""

    caller_keyed: ClassVar[bool] = True
    message_id: str = Field(min_length=1, max_length=200)
    channel: Channel
    account: str = Field(min_length=1)
    recipient: str = Field(min_length=1, description="provider chat id / phone / user id")
    content: OutContent
    keyboard: Keyboard | None = None
    reply_to: str | None = Field(None, description="provider message id to answer")
    priority: Priority = Priority.NORMAL
    # Times need a timezone: a naive one means a different instant on every machine.
    not_before: AwareDatetime | None = Field(None, description="not sent before (with a timezone)")
    expires_at: AwareDatetime | None = Field(
        None, description="a send not made by then fails (with a timezone)"
    )
    campaign_id: str | None = None
    conversation_id: str | None = None

    def routing_tokens(self) -> tuple[str, ...]:
        return (
            self.channel.value,
            self.account,
            chat_bucket(recipient_key(self.channel, self.recipient)),
        )

    def ce_subject(self) -> str:
        return self.message_id

    def deterministic_id(self) -> str:
        return f"send:{self.message_id}"


class ConversionUserData(Value):
    """Who converted, in Meta's ``user_data`` field names and **plain** (unhashed) values:
    outbound normalizes and hashes them exactly as Meta's ``facebook-business`` SDK does, so
    no producer has to get hashing right. ``lead_id`` (Meta's own lead id), the click ids and
    the client fields are sent as they are."""

    em: tuple[str, ...] = Field(default=(), description="e-mail addresses")
    ph: tuple[str, ...] = Field(default=(), description="phone numbers, any format")
    fn: str | None = Field(None, description="first name")
    ln: str | None = Field(None, description="last name")
    ct: str | None = Field(None, description="city")
    st: str | None = Field(None, description="state or region")
    zp: str | None = Field(None, description="postal code")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2")
    db: str | None = Field(None, description="date of birth, YYYYMMDD")
    ge: Literal["f", "m"] | None = None
    external_id: tuple[str, ...] = Field(default=(), description="our ids of the person")
    lead_id: str | None = Field(None, description="Meta's lead id (lead ads), never hashed")
    fbc: str | None = None
    fbp: str | None = None
    client_ip_address: str | None = None
    client_user_agent: str | None = None
    ctwa_clid: str | None = Field(
        None, description="click-to-WhatsApp ad click id (business_messaging), never hashed"
    )


# Where a conversion happened, in Meta's words (its ``action_source``); producers that choose
# one for their conversions (analytics' settings) take it from here.
ActionSource = Literal[
    "system_generated",
    "website",
    "app",
    "chat",
    "phone_call",
    "email",
    "physical_store",
    "business_messaging",
    "other",
]


@register("outbound.conversion", 1)
class SendConversion(ProviderRouted, Command):
    """Report one conversion (``Lead``, ``Purchase``, ...) to Meta's Conversions API through a
    pixel / dataset account. ``conversion_id`` is the idempotency key (sent at most once, as
    ``message_id`` for sends); ``event_id`` is Meta's dedup key between pixel and server, so a
    producer derives it from its own source event and a replay reports the same event."""

    provider_name: ClassVar[str] = "metacapi"

    conversion_id: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, description="pixel / dataset id (metacapi account)")
    event_name: str = Field(min_length=1, description="Meta standard or custom event name")
    event_time: datetime
    event_id: str = Field(min_length=1, max_length=200)
    action_source: ActionSource = "system_generated"
    user_data: ConversionUserData
    value: float | None = Field(None, ge=0)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217")
    custom_data: dict[str, Any] = Field(default_factory=dict, description="extra custom_data")
    event_source_url: str | None = None
    messaging_channel: Literal["whatsapp", "messenger", "instagram"] | None = Field(
        None, description="where a business_messaging conversion's conversation happened"
    )
    lead_id: str | None = Field(None, description="our CRM lead id, for correlation")
    test_event_code: str | None = Field(None, description="Meta Events Manager test code")

    @model_validator(mode="after")
    def _currency_with_value(self) -> Self:
        if self.value is not None and self.currency is None:
            raise ValueError("a conversion value needs a currency")
        return self

    def ce_subject(self) -> str:
        return self.conversion_id

    def deterministic_id(self) -> str:
        return f"conversion:{self.conversion_id}"


# -- the bulk lane and campaigns ------------------------------------------------------------


@register("outbound.bulk_send", 1)
class SendBulk(SendMessage):
    """Send one message in the bulk lane: the fields and idempotency of ``outbound.send``, on
    its own subject and consumer, so a broadcast never queues in front of a conversational
    reply. A bulk send takes an account's rate only as far ahead as conversational sends leave
    it free. Campaign fan-out publishes these (``message_id`` ``<campaign_id>:<batch>:<n>``);
    anyone may publish them for other volume sends. The subject carries the campaign (``_``
    when there is none), so the stream counts what is left of each campaign."""

    priority: Priority = Priority.BULK

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.channel.value, self.account, self.campaign_id or "")

    def deterministic_id(self) -> str:
        return f"bulk:{self.message_id}"


MAX_CAMPAIGN_BATCH = 5000
"""Recipients per campaign command: 5000 of the longest (64 + 64 characters) stay under NATS's
default 1 MB message size."""

CampaignId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="the caller's id of the campaign (idempotency key of its commands)",
    ),
]


class CampaignRecipient(Value):
    """One recipient of a campaign. ``account`` pins it to one account (a Telegram chat exists
    only for the bot the user wrote to); without it the campaign sends through whichever of
    its accounts has room, so the recipients spread over the accounts' combined rate."""

    recipient: str = Field(min_length=1, max_length=64, description="chat id / phone / user")
    account: str | None = Field(None, min_length=1, max_length=64)


def _recipient_objects(value: Any) -> Any:
    """Accept plain strings for recipients without a pinned account."""
    if isinstance(value, list | tuple):
        return [{"recipient": v} if isinstance(v, str) else v for v in value]
    return value


class PoolAccount(Value):
    """An account of another channel in a campaign's pool (a bot beside user accounts)."""

    channel: Channel
    account: str = Field(min_length=1, max_length=64)


class _CampaignCommand(Command):
    """A command about one campaign: routed, and its CloudEvents subject named, by it."""

    about: ClassVar[str] = "campaign_id"
    caller_keyed: ClassVar[bool] = True  # campaign ids are per workspace

    campaign_id: CampaignId


class _CampaignBatch(_CampaignCommand):
    """A command carrying a batch of a campaign's recipients (plain addresses accepted)."""

    @model_validator(mode="before")
    @classmethod
    def _plain_recipients(cls, data: Any) -> Any:
        if isinstance(data, dict) and "recipients" in data:
            data = {**data, "recipients": _recipient_objects(data["recipients"])}
        return data


@register("outbound.campaign_start", 1)
class StartCampaign(_CampaignBatch):
    """Start a campaign: one content to many recipients through a pool of accounts, fanned
    out at the highest rate the accounts' limits permit. ``recipients`` is batch 0; when more
    follow (``final`` false), they come as ``outbound.campaign_recipients`` batches 1, 2, ...
    (the CRM expands a segment this way and names it in ``segment``). Sends go through the
    bulk lane unless ``priority`` says otherwise; progress and completion are
    ``delivery.campaign_*`` events. Idempotent by ``campaign_id``."""

    title: str | None = Field(None, max_length=200, description="for people reading reports")
    channel: Channel
    accounts: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        min_length=1, max_length=100, description="the pool of accounts recipients spread over"
    )
    pool: tuple[PoolAccount, ...] = Field(
        default=(),
        max_length=100,
        description="accounts of other channels sharing the pool (e.g. a bot beside user "
        "accounts); recipients must be addressable through each",
    )
    content: OutContent
    keyboard: Keyboard | None = None
    priority: Priority = Priority.BULK
    recipients: tuple[CampaignRecipient, ...] = Field(default=(), max_length=MAX_CAMPAIGN_BATCH)
    final: bool = Field(True, description="no outbound.campaign_recipients batch follows")
    expected_total: int | None = Field(
        None, ge=0, description="all recipients, when known before the last batch (for ETA)"
    )
    segment: str | None = Field(None, description="the CRM segment the recipients came from")
    not_before: AwareDatetime | None = Field(
        None, description="do not start sending before (with a timezone)"
    )
    expires_at: AwareDatetime | None = Field(
        None, description="a send not made by then fails (with a timezone)"
    )

    def deterministic_id(self) -> str:
        return f"campaign:{self.campaign_id}:start"


@register("outbound.campaign_recipients", 1)
class AddCampaignRecipients(_CampaignBatch):
    """A further batch of a campaign's recipients (the start command is batch 0). Batches may
    arrive in any order; each is stored once (idempotent by campaign and ``batch``), and the
    campaign completes only after the ``final`` batch and every batch before it arrived."""

    batch: int = Field(ge=1, description="1, 2, ...: the position of this batch")
    recipients: tuple[CampaignRecipient, ...] = Field(min_length=1, max_length=MAX_CAMPAIGN_BATCH)
    final: bool = Field(False, description="the last batch of the campaign")

    def deterministic_id(self) -> str:
        return f"campaign:{self.campaign_id}:batch:{self.batch}"


@register("outbound.campaign_control", 1)
class ControlCampaign(_CampaignCommand):
    """Pause, resume or cancel a campaign. A pause holds sends not yet made (a send already
    at the provider completes); cancel is final: what is not sent by then is not sent, and the
    completion event counts it as cancelled. Commands apply in the order they were published."""

    action: Literal["pause", "resume", "cancel"]
    reason: str | None = Field(None, max_length=500)


@register("outbound.schedule_change", 1)
class ChangeScheduledSend(Command):
    """Cancel a scheduled send (``not_before``) or move it, until it leaves: a cancel
    ends it as ``delivery.failed`` with ``error_code`` ``cancelled``; a reschedule is
    ``delivery.rescheduled``. A change that can no longer be made (the send left, or is due
    within a second) is dead-lettered with the reason. Same as
    ``POST /v1/messages/{message_id}/cancel`` and ``.../reschedule``."""

    caller_keyed: ClassVar[bool] = True  # message ids are per workspace

    message_id: str = Field(min_length=1, max_length=200)
    action: Literal["cancel", "reschedule"]
    not_before: AwareDatetime | None = Field(
        None, description="the new time of a reschedule (earlier or later, not past)"
    )

    @model_validator(mode="after")
    def _time_for_reschedule(self) -> Self:
        if (self.action == "reschedule") != (self.not_before is not None):
            raise ValueError("not_before: a reschedule needs it, a cancel takes none")
        return self

    def ce_subject(self) -> str:
        return self.message_id


# -- interactions with messages already sent or received --------------------------------

RequestId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="the caller's id of this request (idempotency key within the workspace)",
    ),
]


class _Interaction(ChannelRouted, Command):
    caller_keyed: ClassVar[bool] = True  # request ids are per workspace

    request_id: RequestId
    channel: Channel
    account: str = Field(min_length=1)

    def ce_subject(self) -> str:
        return self.request_id


@register("outbound.answer_callback", 1)
class AnswerCallback(_Interaction):
    """Answer a pressed inline button (Telegram ``answerCallbackQuery``): the user's button
    stops spinning and sees ``text`` (as an alert when ``show_alert``). Outcome:
    ``delivery.interaction_applied`` / ``delivery.interaction_failed``."""

    callback_query_id: str = Field(min_length=1, max_length=100)
    text: str | None = Field(None, max_length=200)
    show_alert: bool = False
    url: str | None = None
    cache_time: int | None = Field(None, ge=0, le=3600)

    def deterministic_id(self) -> str:
        return f"answer:{self.request_id}"


class _Target(_Interaction):
    """A message to change: ``message_id`` of a send of ours (its chat and provider id come
    from its record), or ``recipient`` with ``provider_message_id``."""

    message_id: str | None = Field(None, min_length=1, max_length=200)
    recipient: str | None = Field(None, min_length=1)
    provider_message_id: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        by_provider = self.recipient is not None and self.provider_message_id is not None
        if (self.message_id is not None) == by_provider:
            raise ValueError(
                "message_id: give it, or recipient with provider_message_id (not both)"
            )
        return self


class BotCommand(Value):
    """One entry of a bot's command menu."""

    command: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="without the slash")
    description: str = Field(min_length=1, max_length=256)


@register("outbound.bot_commands", 1)
class SetBotCommands(_Interaction):
    """Set a bot's command menu (Telegram ``setMyCommands``; an empty list clears it), for
    ``language_code`` users or everyone. Outcome: ``delivery.interaction_applied`` /
    ``delivery.interaction_failed`` with action ``bot_commands``."""

    commands: tuple[BotCommand, ...] = Field(default=(), max_length=100)
    language_code: str | None = Field(None, min_length=2, max_length=8)

    def deterministic_id(self) -> str:
        return f"bot_commands:{self.request_id}"


@register("outbound.edit", 1)
class EditMessage(_Target):
    """Edit a sent message: its ``text``, or a media message's ``caption``, and/or its inline
    ``keyboard`` (Telegram ``editMessageText`` / ``editMessageCaption`` /
    ``editMessageReplyMarkup``). Outcome: ``delivery.interaction_applied`` / ``_failed``."""

    text: str | None = Field(None, min_length=1)
    caption: str | None = None
    parse_mode: Literal["MarkdownV2", "HTML", "Markdown"] | None = None
    keyboard: Keyboard | None = None

    @model_validator(mode="after")
    def _something_to_edit(self) -> Self:
        if self.text is not None and self.caption is not None:
            raise ValueError("text: a message has a text or a caption, not both")
        if self.text is None and self.caption is None and self.keyboard is None:
            raise ValueError("text: give text, caption or keyboard to edit")
        if self.keyboard is not None and self.keyboard.type != "inline":
            raise ValueError("keyboard: only an inline keyboard can be edited")
        return self

    def deterministic_id(self) -> str:
        return f"edit:{self.request_id}"


@register("outbound.delete", 1)
class DeleteMessage(_Target):
    """Delete a sent message (Telegram ``deleteMessage``). Outcome:
    ``delivery.interaction_applied`` / ``delivery.interaction_failed``."""

    def deterministic_id(self) -> str:
        return f"delete:{self.request_id}"


# -- SendPulse: email, SMS and address books ------------------------------------------------


class EmailAddress(Value):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str | None = Field(None, max_length=200)


class _SendPulseMessage(ProviderRouted, Command):
    """A message sent through a SendPulse account, idempotent by ``message_id`` (per
    workspace), routed by the account and about that message."""

    caller_keyed: ClassVar[bool] = True  # ids are per workspace
    provider_name: ClassVar[str] = "sendpulse"

    message_id: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, description="the SendPulse account")

    def ce_subject(self) -> str:
        return self.message_id


@register("outbound.email", 1)
class SendEmail(_SendPulseMessage):
    """Send one transactional email through a SendPulse account (its SMTP API). Give ``html``
    and/or ``text``, or a SendPulse ``template_id`` with its variables. ``message_id`` is the
    idempotency key, as for chat sends; the outcome is ``delivery.dispatched`` /
    ``delivery.dispatch_failed``."""

    sender: EmailAddress
    to: tuple[EmailAddress, ...] = Field(min_length=1, max_length=100)
    subject_line: str | None = Field(None, max_length=998, description="the email's subject")
    html: str | None = None
    text: str | None = None
    template_id: str | None = None
    template_variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_body(self) -> Self:
        if not (self.html or self.text or self.template_id):
            raise ValueError("an email needs html, text or a template_id")
        if not self.template_id and not self.subject_line:
            raise ValueError("an email without a template needs a subject")
        return self

    def deterministic_id(self) -> str:
        return f"email:{self.message_id}"


@register("outbound.sms", 1)
class SendSms(_SendPulseMessage):
    """Send one SMS text to one or more phones through a SendPulse account. Idempotent by
    ``message_id``; the outcome is ``delivery.dispatched`` / ``delivery.dispatch_failed``."""

    sender: str = Field(min_length=1, max_length=64, description="registered sender name")
    phones: tuple[str, ...] = Field(min_length=1, max_length=1000)
    body: str = Field(min_length=1)
    transliterate: bool = False

    def deterministic_id(self) -> str:
        return f"sms:{self.message_id}"


class BookContact(Value):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    variables: dict[str, Any] = Field(default_factory=dict, description="name, phone, ...")


@register("outbound.address_book_sync", 1)
class SyncAddressBook(ProviderRouted, Command):
    """Add contacts to (or update their variables in) a SendPulse address book. ``sync_id``
    is the idempotency key; the outcome is ``delivery.dispatched`` /
    ``delivery.dispatch_failed``."""

    caller_keyed: ClassVar[bool] = True  # ids are per workspace
    provider_name: ClassVar[str] = "sendpulse"

    sync_id: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, description="the SendPulse account")
    address_book_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9]+$")
    contacts: tuple[BookContact, ...] = Field(min_length=1, max_length=1000)

    def ce_subject(self) -> str:
        return self.sync_id

    def deterministic_id(self) -> str:
        return f"book:{self.sync_id}"
