"""Server-side post templates: versioned texts with ``{{ variable }}`` placeholders, filled
with each value escaped for the template's markup (runtime.markup, as flows do), then, for a
destination without markup, turned into the text it shows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText
from switchboard.outbound.calendar.kv import key, values
from switchboard.outbound.errors import OutboundServiceError
from switchboard.runtime.kv import KvModels
from switchboard.runtime.markup import Format, as_shown, escape_for

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateText(BaseModel):
    """What a caller writes for a version: the text (the author's markup) and its format."""

    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=4096)
    format: Format = "html"


class NewTemplate(TemplateText):
    name: str = Field(pattern=NAME)


class TemplateVersion(TemplateText):
    version: int
    created_at: datetime


class Template(BaseModel):
    """One template of a workspace with every version it had (oldest first)."""

    workspace_id: str
    name: str
    versions: list[TemplateVersion]

    def version(self, number: int | None) -> TemplateVersion | None:
        """Version ``number``, or the latest for None."""
        if number is None:
            return self.versions[-1]
        return next((v for v in self.versions if v.version == number), None)

    def summary(self) -> dict[str, object]:
        latest = self.versions[-1]
        return {
            "name": self.name,
            "latest_version": latest.version,
            "format": latest.format,
            "variables": variables_of(latest.body),
            "updated_at": latest.created_at.isoformat(),
        }


class MissingVariablesError(OutboundServiceError, ValueError):
    """The template names variables the post does not give."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def variables_of(body: str) -> list[str]:
    """The variable names a template uses, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(body)))


def render(version: TemplateText, variables: Mapping[str, str], channel: Channel) -> OutText:
    """The text content of a post: every placeholder replaced by its value escaped for
    ``channel``'s markup (so a value never becomes markup). Pure; every variable the
    template uses must be given (MissingVariablesError names the missing ones)."""
    missing = [n for n in variables_of(version.body) if n not in variables]
    if missing:
        raise MissingVariablesError(missing)
    fmt = version.format
    text = _PLACEHOLDER.sub(lambda m: escape_for(str(variables[m.group(1)]), fmt), version.body)
    # WhatsApp and Viber show no markup: the author's becomes what they show
    # (WhatsApp's own markers, words, links with their address), never raw tags
    shown, mode = as_shown(text, fmt, channel)
    return OutText(text=shown, parse_mode=mode)


class Templates:
    """Templates in the ``calendar`` bucket: one key per template holding every version,
    written with compare-and-set so two concurrent edits make two versions, never one."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._records = KvModels(kv, Template)

    async def read(self, workspace: str, name: str) -> tuple[Template, int] | None:
        return await self._records.read(key("tpl", workspace, name))

    async def get(self, workspace: str, name: str) -> Template | None:
        return await self._records.get(key("tpl", workspace, name))

    async def create(self, workspace: str, new: NewTemplate) -> Template | None:
        """Version 1 of a new template; None when the name is taken in the workspace."""
        first = TemplateVersion(body=new.body, format=new.format, version=1, created_at=_now())
        template = Template(workspace_id=workspace, name=new.name, versions=[first])
        if not await self._records.create(key("tpl", workspace, new.name), template):
            return None
        return template

    async def add_version(self, workspace: str, name: str, text: TemplateText) -> Template | None:
        """A new version of an existing template (None: there is none of that name)."""
        while True:
            found = await self.read(workspace, name)
            if found is None:
                return None
            template, revision = found
            number = template.versions[-1].version + 1
            version = TemplateVersion(
                body=text.body, format=text.format, version=number, created_at=_now()
            )
            template = template.model_copy(update={"versions": [*template.versions, version]})
            if await self._records.replace(key("tpl", workspace, name), template, revision):
                return template
            # another edit came first: this one becomes the next version

    async def all(self, workspace: str) -> list[Template]:
        found = [
            Template.model_validate(orjson.loads(v))
            for v in await values(self.kv, "tpl", workspace)
        ]
        return sorted(found, key=lambda t: t.name)


def _now() -> datetime:
    return datetime.now(UTC)
