"""Base classes of the catalog: every event and command is a frozen pydantic model with a
name and a version, so the wire contract is the model and nothing else."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from switchboard.events.subjects import command_subject, event_subject


class Message(BaseModel):
    """A versioned message of the catalog (an event or a command).

    Subclasses set ``name`` (``<domain>.<event>``) and ``version`` through the
    ``@register`` decorator, which also adds them to the registry.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: ClassVar[str] = ""
    version: ClassVar[int] = 0
    kind: ClassVar[str] = "event"
    # The deterministic id comes from a key the caller chose (a message_id): two workspaces
    # may choose the same one, so the codec scopes such ids by workspace (``scoped_id``).
    caller_keyed: ClassVar[bool] = False

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents ``type``: ``switchboard.<name>.v<version>``."""
        return f"switchboard.{cls.name}.v{cls.version}"

    # The field naming the one thing a message is about (``"lead_id"``), set by a domain's
    # base class: its value is then the routing token and the CloudEvents subject.
    about: ClassVar[str | None] = None

    def routing_tokens(self) -> tuple[str, ...]:
        """Subject tokens after the version, used for routing and filtering."""
        return () if self.about is None else (str(getattr(self, self.about)),)

    def deterministic_id(self) -> str | None:
        """The event id when it follows from the payload (provider identity), else None."""
        return None

    def ce_subject(self) -> str | None:
        """The CloudEvents ``subject`` attribute: what the event is about, if anything."""
        return None if self.about is None else str(getattr(self, self.about))

    def subject(self) -> str:
        """The NATS subject this message is published on."""
        return event_subject(self.name, self.version, self.routing_tokens())


class Event(Message):
    """Something that happened (past tense), published on ``<domain>.<event>.v<N>...``."""

    kind: ClassVar[str] = "event"


class Command(Message):
    """A request to do something (imperative), published on ``cmd.<domain>.<command>.v<N>...``."""

    kind: ClassVar[str] = "command"

    def subject(self) -> str:
        return command_subject(self.name, self.version, self.routing_tokens())
