"""Conversation events: what customers wrote, normalized across channels (stream ``CONV``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field

from switchboard.events.base import Event
from switchboard.events.catalog.common import Channel, Chat, MediaFile, Sender, Value
from switchboard.events.catalog.routing import ChannelRouted
from switchboard.events.ids import derived
from switchboard.events.registry import register
from switchboard.events.subjects import token


class TextContent(Value):
    kind: Literal["text"] = "text"
    text: str


class _Media(Value):
    caption: str | None = None
    file: MediaFile
    sizes: tuple[MediaFile, ...] = Field(default=(), description="other sizes (photos)")


class PhotoContent(_Media):
    kind: Literal["photo"] = "photo"


class VideoContent(_Media):
    kind: Literal["video"] = "video"


class AudioContent(_Media):
    kind: Literal["audio"] = "audio"
    title: str | None = None
    performer: str | None = None


class VoiceContent(_Media):
    kind: Literal["voice"] = "voice"


class DocumentContent(_Media):
    kind: Literal["document"] = "document"


class AnimationContent(_Media):
    kind: Literal["animation"] = "animation"


class StickerContent(_Media):
    kind: Literal["sticker"] = "sticker"
    emoji: str | None = None
    set_name: str | None = None


class LocationContent(Value):
    kind: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    title: str | None = None
    address: str | None = None


class ContactContent(Value):
    kind: Literal["contact"] = "contact"
    phone: str
    first_name: str | None = None
    last_name: str | None = None
    user_id: str | None = None
    vcard: str | None = None


class UnsupportedContent(Value):
    """A valid provider message of a kind the catalog does not model yet: never dropped."""

    kind: Literal["unsupported"] = "unsupported"
    provider_kind: str = Field(description="the provider's own name for the kind")
    raw_ref: str | None = Field(None, description="id of the RAW message holding the payload")


Content = Annotated[
    TextContent
    | PhotoContent
    | VideoContent
    | AudioContent
    | VoiceContent
    | DocumentContent
    | AnimationContent
    | StickerContent
    | LocationContent
    | ContactContent
    | UnsupportedContent,
    Field(discriminator="kind"),
]


class Referral(Value):
    """Where a conversation came from: an ad the customer clicked (WhatsApp click-to-WhatsApp
    ``referral``) or a deep link that opened it (Telegram ``/start <payload>``, Viber
    ``context``). The CRM stores it on the lead; conversions report ``click_id`` back."""

    source: Literal["ad", "deep_link"]
    campaign: str | None = Field(None, description="ad / post id, or the deep-link payload")
    click_id: str | None = Field(None, description="WhatsApp ``ctwa_clid``: CAPI attribution")
    source_type: str | None = Field(None, description="WhatsApp: ``ad`` or ``post``")
    source_url: str | None = None
    headline: str | None = None


class PostRef(Value):
    """A message in another chat (e.g. the channel post a discussion-group copy forwards)."""

    chat_id: str = Field(min_length=1)
    message_id: str = Field(min_length=1)


class ProviderIds(Value):
    """The provider's own identifiers of the message and the delivery that carried it."""

    message_id: str = Field(min_length=1)
    update_id: str | None = None
    raw_id: str | None = Field(None, description="ce-id of the RAW message")


class _InConversation(ChannelRouted):
    """Mixin for a message in one conversation: its subject is the conversation's key."""

    if TYPE_CHECKING:
        chat: Chat

    def ce_subject(self) -> str:
        return conversation_key(self.channel, self.account, self.chat.id)


@register("conv.message_received", 1)
class MessageReceived(_InConversation, Event):
    """A customer's message arrived on a channel account. Emitted by the ingest normalizer
    once per provider message (deterministic id from the provider's identity)."""

    channel: Channel
    account: str = Field(min_length=1)
    chat: Chat
    sender: Sender
    content: Content
    reply_to: str | None = Field(None, description="provider message id this one answers")
    provider: ProviderIds
    sent_at: datetime = Field(description="when the provider says the message was sent")
    received_at: datetime = Field(description="when ingest accepted the webhook")
    referral: Referral | None = Field(None, description="the ad or deep link that led here")
    forward_of: PostRef | None = Field(
        None, description="the channel post this message is Telegram's automatic forward of"
    )

    def deterministic_id(self) -> str:
        # From the provider's identity of the message, not of the delivery that carried it: a
        # retried or regrouped webhook (WhatsApp batches) still yields the same event id.
        return message_event_id(self, "message_received")


def message_event_id(event: MessageReceived | _ConvEvent, what: str) -> str:
    """``<channel>:<account>:<chat>/<provider message id>/<what>``, tokens escaped."""
    return derived(_chat_ref(event), token(event.provider.message_id), what)


def _chat_ref(event: MessageReceived | _ConvEvent) -> str:
    """``<channel>:<account>:<chat>``, tokens escaped: the root of derived conv ids."""
    return ":".join(token(p) for p in (event.channel.value, event.account, event.chat.id))


def conversation_key(channel: Channel | str, account: str, chat_id: str) -> str:
    """The identity of a conversation: ``<channel>/<account>/<chat>``."""
    return f"{Channel(channel).value}/{account}/{chat_id}"


class _ConvEvent(_InConversation, Event):
    channel: Channel
    account: str = Field(min_length=1)
    chat: Chat
    provider: ProviderIds
    received_at: datetime = Field(description="when ingest accepted the webhook")

    def deterministic_id(self) -> str:
        return message_event_id(self, self.name.split(".")[1])


@register("conv.message_edited", 1)
class MessageEdited(_ConvEvent):
    """A customer edited a message they sent earlier; ``content`` is the new version and
    ``provider.message_id`` names the message that changed."""

    sender: Sender | None = None
    content: Content
    edited_at: datetime

    def deterministic_id(self) -> str:
        # Every edit of a message is its own event.
        return message_event_id(self, f"edited@{int(self.edited_at.timestamp() * 1000)}")


@register("conv.message_deleted", 1)
class MessageDeleted(_ConvEvent):
    """Messages were deleted in a chat (MTProto channels, providers that report deletions)."""

    message_ids: tuple[str, ...] = Field(min_length=1)
    deleted_at: datetime


@register("conv.callback_received", 1)
class CallbackReceived(_ConvEvent):
    """A customer pressed an inline button; ``data`` is the button's callback data."""

    sender: Sender
    callback_id: str = Field(min_length=1)
    data: str | None = None
    message_id: str | None = Field(None, description="the message carrying the button")


class ContactStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    CONVERSATION_STARTED = "conversation_started"


@register("conv.contact_status_changed", 1)
class ContactStatusChanged(_ConvEvent):
    """A customer subscribed, unsubscribed, blocked or unblocked the account, or opened a
    conversation (Viber). Sends to a blocked chat fail permanently until unblocked."""

    sender: Sender
    status: ContactStatus
    at: datetime
    referral: Referral | None = Field(
        None, description="the deep link that opened the conversation (Viber ``context``)"
    )


class MembershipChange(StrEnum):
    JOINED = "joined"
    LEFT = "left"


@register("conv.members_changed", 1)
class MembersChanged(_ConvEvent):
    """People joined or left a group (Telegram ``new_chat_members`` / ``left_chat_member``):
    a service message, never something a customer wrote, so no message count changes."""

    change: MembershipChange
    members: tuple[Sender, ...] = Field(min_length=1)
    by: Sender | None = Field(None, description="who added or removed them, if not themselves")
    at: datetime


@register("conv.chat_migrated", 1)
class ChatMigrated(_ConvEvent):
    """A group became a supergroup and its chat id changed from ``chat.id`` to ``to_chat_id``
    (Telegram ``migrate_to_chat_id`` / ``migrate_from_chat_id``): the conversation moves."""

    to_chat_id: str = Field(min_length=1)
    at: datetime

    def deterministic_id(self) -> str:
        # Telegram reports a migration twice (in the old and in the new chat): one event.
        return derived(_chat_ref(self), "migrated", token(self.to_chat_id))


class BotMembership(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    PROMOTED = "promoted"
    DEMOTED = "demoted"
    RESTRICTED = "restricted"
    UNRESTRICTED = "unrestricted"
    RIGHTS_CHANGED = "rights_changed"


@register("conv.bot_membership_changed", 1)
class BotMembershipChanged(_ConvEvent):
    """The account's bot was added to, removed from, promoted or demoted in a group or channel
    (Telegram ``my_chat_member`` outside private chats; in a private chat that is a block or
    unblock, :class:`ContactStatusChanged`)."""

    change: BotMembership
    old_status: str = Field(min_length=1, description="the provider's status before")
    new_status: str = Field(min_length=1, description="the provider's status after")
    by: Sender | None = None
    at: datetime


@register("conv.service_message_received", 1)
class ServiceMessageReceived(_ConvEvent):
    """A provider's service message about the chat, not customer text: a title or photo
    changed, a message pinned, a forum topic or video chat event, an auto-delete timer, a
    WhatsApp ``system`` notice. Kept in ``CONV``; it is no message and changes no count."""

    action: str = Field(min_length=1, description="the provider's field or system type")
    by: Sender | None = None
    text: str | None = Field(None, description="the new title, the provider's notice, ...")
    at: datetime


@register("conv.contact_number_changed", 1)
class ContactNumberChanged(_ConvEvent):
    """A WhatsApp user changed their phone number (``system`` ``user_changed_number``): the
    person behind ``sender`` is now reached as ``new_id`` (and ``new_user_id``, the BSUID
    that changes with the number), so the CRM links the new identity to the same contact."""

    sender: Sender
    new_id: str | None = Field(None, description="the new wa_id (phone)")
    new_user_id: str | None = Field(None, description="the new business-scoped user id")
    text: str | None = None
    at: datetime


@register("conv.update_unsupported", 1)
class UpdateUnsupported(ChannelRouted, Event):
    """A valid provider update of a kind not modelled yet: recorded, never silently dropped;
    ``raw_id`` points at the payload in ``RAW`` so it can be re-normalized later."""

    channel: Channel
    account: str = Field(min_length=1)
    provider_kind: str = Field(min_length=1)
    raw_id: str = Field(min_length=1)
    received_at: datetime

    def deterministic_id(self) -> str:
        return derived(self.raw_id, "update_unsupported")


@register("conv.message_sent", 1)
class MessageSent(_InConversation, Event):
    """A message the business sent reached the provider (emitted by outbound with the
    provider's id), so conversations show both sides."""

    caller_keyed: ClassVar[bool] = True  # the id follows the send's message_id

    channel: Channel
    account: str = Field(min_length=1)
    chat: Chat
    message_id: str = Field(min_length=1, description="the send command's message_id")
    provider_message_id: str = Field(min_length=1)
    text: str | None = Field(None, description="text or caption, for display and search")
    content_kind: str = Field(min_length=1, description="text, photo, template, ...")
    sent_at: datetime
    campaign_id: str | None = None

    def deterministic_id(self) -> str:
        return f"sent:{self.message_id}"
