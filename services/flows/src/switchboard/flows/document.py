"""The flow document: its JSON Schema (published at ``GET /v1/flows/schema``) and validation
that names the JSON path and the reason of every problem.

A flow is ``{"name", "triggers", "start", "steps": {<id>: <step>}}``. Steps are keyed by id
so paths read like ``$.steps.ask_phone.validate``; ``next`` names the following step (absent:
the run ends).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Annotated, Any, Literal

import re2
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from switchboard.events.catalog.common import Channel
from switchboard.flows.errors import FlowsServiceError
from switchboard.runtime.button_limits import buttons_problem
from switchboard.runtime.http import without_tags
from switchboard.runtime.media_kinds import file_problems
from switchboard.runtime.telegram_html import html_problem

STEP_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_REFERENCE = re.compile(r"^(vars|contact|message)\.[A-Za-z_][A-Za-z0-9_]*$")
MAX_DELAY_S = 30 * 24 * 3600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- triggers ------------------------------------------------------------------------------


class StartTrigger(_Strict):
    """Telegram ``/start`` (a deep link ``t.me/<bot>?start=<payload>`` carries a payload)."""

    type: Literal["start"]
    payload: str | None = Field(None, description="only this deep-link payload (any if absent)")


class CommandTrigger(_Strict):
    """A bot command such as ``/help`` (without the slash)."""

    type: Literal["command"]
    command: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    description: str | None = Field(
        None, min_length=1, max_length=256, description="in the bot's menu (else the flow's name)"
    )


class KeywordTrigger(_Strict):
    """A message containing one of the keywords (case-insensitive, whole words)."""

    type: Literal["keyword"]
    keywords: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)


class FirstMessageTrigger(_Strict):
    """The first message of a conversation this service has not seen before."""

    type: Literal["first_message"]


class ButtonTrigger(_Strict):
    """A button press with this callback data outside a running flow."""

    type: Literal["button"]
    data: str = Field(min_length=1, max_length=64)


class ConversationStartedTrigger(_Strict):
    """Viber ``conversation_started``: the customer opened the chat (a deep link
    ``viber://pa?chatURI=<uri>&context=<context>`` carries a context)."""

    type: Literal["conversation_started"]
    context: str | None = Field(None, description="only this context (any if absent)")


class ReferralTrigger(_Strict):
    """A message that came with a referral: a WhatsApp click-to-WhatsApp ad (``ad``) or a
    deep link (``deep_link``), optionally only from one ad or link (``campaign``)."""

    type: Literal["referral"]
    source: Literal["ad", "deep_link"] | None = Field(None, description="any if absent")
    campaign: str | None = Field(None, description="the ad / post id or link payload")


class LeadStageTrigger(_Strict):
    """The CRM moved the contact's lead to ``stage`` (``crm.lead_stage_changed``)."""

    type: Literal["lead_stage"]
    stage: str = Field(min_length=1)


class TagAddedTrigger(_Strict):
    """The CRM contact got ``tag`` (``crm.contact_updated`` with it in ``tags_added``)."""

    type: Literal["tag_added"]
    tag: str = Field(min_length=1, max_length=64)


class SegmentScope(_Strict):
    """A CRM segment (as ``POST /v1/campaigns`` reads it): whom a campaign step sends to and
    where a schedule trigger starts its flow."""

    channel: Channel
    account: str | None = Field(None, min_length=1)
    tags: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    stage: str | None = Field(None, min_length=1)
    assignee: str | None = Field(None, min_length=1)


class ScheduleTrigger(_Strict):
    """At ``at`` (then every ``every_s``, if given) the flow starts in each conversation of
    its scope that runs no flow at that moment: with a ``segment``, each conversation of
    that CRM segment (the CRM expands it); without, each one this service has talked with."""

    type: Literal["schedule"]
    at: AwareDatetime = Field(description="the first time (with a timezone)")
    every_s: int | None = Field(None, ge=60, le=MAX_DELAY_S, description="then repeat")
    segment: SegmentScope | None = Field(None, description="the CRM segment to start it in")


Trigger = Annotated[
    StartTrigger
    | CommandTrigger
    | KeywordTrigger
    | FirstMessageTrigger
    | ButtonTrigger
    | ConversationStartedTrigger
    | ReferralTrigger
    | LeadStageTrigger
    | TagAddedTrigger
    | ScheduleTrigger,
    Field(discriminator="type"),
]

# -- steps ---------------------------------------------------------------------------------

StepId = Annotated[str, Field(pattern=STEP_ID)]
VarName = Annotated[str, Field(pattern=VAR_NAME)]


class Button(_Strict):
    text: str = Field(min_length=1, max_length=64)
    data: str = Field(min_length=1, max_length=64, description="callback data")
    next: StepId | None = Field(None, description="where a press goes (waits for a press)")


class Media(_Strict):
    """A file sent by its http(s) URL (the provider fetches it)."""

    kind: Literal["photo", "video", "audio", "voice", "document", "animation"]
    url: str = Field(pattern=r"^https?://\S+$", max_length=2048)
    file_name: str | None = Field(None, min_length=1, max_length=256)
    size: int | None = Field(None, ge=1, description="bytes (Viber's videos and files need it)")


class SendStep(_Strict):
    """Send a text (a template), or a file with the text as its caption, with optional
    inline buttons. When a button has ``next`` the run waits for a press; otherwise it goes
    on to ``next``."""

    type: Literal["send"]
    text: str | None = Field(None, min_length=1, max_length=4096)
    media: Media | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    next: StepId | None = None


class AskStep(_Strict):
    """Ask a question and wait for the answer (a text, or one of ``choices`` as buttons),
    validate it, store it in ``var``; re-prompt on an invalid answer."""

    type: Literal["ask"]
    text: str = Field(min_length=1, max_length=4096)
    var: VarName
    validate_as: Literal["text", "number", "email", "phone", "choice"] = Field(
        "text", alias="validate"
    )
    choices: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()
    retry_text: str | None = Field(None, max_length=4096, description="re-prompt (template)")
    max_attempts: int = Field(3, ge=1, le=20, description="invalid answers before on_invalid")
    on_invalid: StepId | None = Field(None, description="after max_attempts (absent: end)")
    timeout_s: int | None = Field(None, ge=1, le=MAX_DELAY_S)
    on_timeout: StepId | None = Field(None, description="when no answer in timeout_s (end)")
    next: StepId | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Comparison(_Strict):
    """A condition comparing the value called ``name`` with ``value`` by ``op``."""

    type: str
    name: VarName
    op: Literal["eq", "ne", "exists", "missing", "gt", "lt", "contains"] = "eq"
    value: str | float | None = None


class VarCondition(_Comparison):
    type: Literal["var"]


class TagCondition(_Strict):
    """The run or the CRM contact has the tag."""

    type: Literal["tag"]
    tag: str = Field(min_length=1)


class KeywordCondition(_Strict):
    type: Literal["keyword"]
    keywords: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)


class RegexCondition(_Strict):
    type: Literal["regex"]
    pattern: str = Field(min_length=1, max_length=500)


class AttributeCondition(_Comparison):
    """On an attribute of the CRM contact (as the CRM has it, with this run's own changes)."""

    type: Literal["attribute"]


class StageCondition(_Strict):
    """The stage of the contact's lead is one of ``stages``."""

    type: Literal["lead_stage"]
    stages: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)


Condition = Annotated[
    VarCondition
    | TagCondition
    | KeywordCondition
    | RegexCondition
    | AttributeCondition
    | StageCondition,
    Field(discriminator="type"),
]


class Case(_Strict):
    when: Condition
    negate: bool = False
    next: StepId


class BranchStep(_Strict):
    """Go to the ``next`` of the first case whose condition holds (on the flow's variables,
    the contact's tags and attributes, its lead's stage, or the text of the message that the
    run is handling), else to ``default``."""

    type: Literal["branch"]
    cases: tuple[Case, ...] = Field(min_length=1)
    default: StepId | None = None


class SetStep(_Strict):
    """Set a flow variable to a value (strings are templates)."""

    type: Literal["set"]
    var: VarName
    value: str | float | bool | None
    next: StepId | None = None


class AttributeStep(_Strict):
    """Set attributes of the CRM contact (``crm.update_contact``); values are templates."""

    type: Literal["set_attribute"]
    attributes: dict[VarName, str | float | bool | None] = Field(min_length=1)
    next: StepId | None = None


class TagStep(_Strict):
    """Add or remove tags on the run and on the CRM contact."""

    type: Literal["tag"]
    add: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()
    remove: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()
    next: StepId | None = None


class LeadStep(_Strict):
    """Change the contact's leads in the CRM (``cmd.crm.*``): ``create`` opens a new lead at
    ``stage`` (``crm.create_lead``; its id goes into the variable ``lead_id``), ``move_stage``
    moves a lead to ``stage``, ``assign`` gives it to ``assignee``. The lead moved or
    assigned is the one this run created, else the contact's first lead."""

    type: Literal["lead"]
    action: Literal["create", "move_stage", "assign"]
    stage: str | None = Field(None, min_length=1)
    assignee: str | None = None
    next: StepId | None = None


ResponsePath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")]


class WebhookStep(_Strict):
    """POST the run's variables (and ``fields``, templates) to ``url``, signed with Standard
    Webhooks under the secret the service knows as ``secret``; map fields of the JSON answer
    into variables (``save``: variable -> dotted path). A non-2xx answer, a timeout, an
    unreachable receiver or a missing path goes to ``on_failure`` (absent: the run ends)."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    secret: VarName = Field(
        description="name of a signing secret (SWITCHBOARD_FLOWS_WEBHOOK_SECRETS)"
    )
    fields: dict[VarName, str | float | bool | None] = Field(default_factory=dict)
    save: dict[VarName, ResponsePath] = Field(default_factory=dict)
    timeout_s: float = Field(5.0, ge=0.1, le=8.0, description="for the whole call")
    next: StepId | None = None
    on_failure: StepId | None = None


class CampaignStep(_Strict):
    """Start a campaign: ``text`` (a template, filled in this run), or a file with it as
    its caption, to everyone in ``segment``, expanded by the CRM and sent by outbound at
    the accounts' rate. Once per run and step: the campaign id comes from the run."""

    type: Literal["campaign"]
    segment: SegmentScope
    text: str | None = Field(None, min_length=1, max_length=4096)
    media: Media | None = Field(None, description="a file, the text its caption")
    title: str | None = Field(None, max_length=200)
    next: StepId | None = None


class DelayStep(_Strict):
    """Wait, then go on: any of seconds, minutes, hours, days (summed; 1 s to 30 days)."""

    type: Literal["delay"]
    seconds: int = Field(0, ge=0)
    minutes: int = Field(0, ge=0)
    hours: int = Field(0, ge=0)
    days: int = Field(0, ge=0)
    next: StepId | None = None

    @property
    def total_s(self) -> int:
        return self.seconds + 60 * self.minutes + 3600 * self.hours + 86400 * self.days


class HandoffStep(_Strict):
    """Hand the conversation to a person: optionally say so, then pause the run."""

    type: Literal["handoff"]
    text: str | None = Field(None, max_length=4096)
    next: StepId | None = Field(None, description="where a released run continues (end)")


class GotoStep(_Strict):
    type: Literal["goto"]
    next: StepId


class EndStep(_Strict):
    type: Literal["end"]
    text: str | None = Field(None, max_length=4096, description="a last message (template)")


Step = Annotated[
    SendStep
    | AskStep
    | BranchStep
    | SetStep
    | TagStep
    | AttributeStep
    | LeadStep
    | WebhookStep
    | CampaignStep
    | DelayStep
    | HandoffStep
    | GotoStep
    | EndStep,
    Field(discriminator="type"),
]


class ChannelScope(_Strict):
    channel: Channel
    account: str | None = Field(None, min_length=1, description="one account (all if absent)")


class FlowDocument(_Strict):
    """A bot scenario: what starts it, where it starts and its steps."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    channels: tuple[ChannelScope, ...] = Field(
        default=(), description="where (if empty: every bot and number, no user account)"
    )
    triggers: tuple[Trigger, ...] = Field(min_length=1)
    start: StepId
    format: Literal["html", "markdown_v2"] = Field(
        "html", description="the markup of texts on Telegram (values are escaped for it)"
    )
    variables: dict[Annotated[str, Field(pattern=VAR_NAME)], str | float | bool | None] = Field(
        default_factory=dict, description="initial values"
    )
    steps: dict[StepId, Step] = Field(min_length=1)

    @property
    def reach(self) -> frozenset[Channel]:
        """The channels the flow answers on: those its ``channels`` name, or without them
        every bot and number."""
        if not self.channels:
            return frozenset({Channel.TELEGRAM, Channel.WHATSAPP, Channel.VIBER})
        return frozenset(s.channel for s in self.channels)

    @property
    def texts_are_markup(self) -> bool:
        """Whether the texts are ``format`` markup: a flow that reaches Telegram (a bot, or
        a user account, which sends the parse mode's entities) writes for its parse mode
        (and is checked for it); one that does not writes the text its channels show."""
        return bool(self.reach & {Channel.TELEGRAM, Channel.MTPROTO})


def json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of a flow document."""
    schema = FlowDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


class InvalidFlowError(FlowsServiceError, ValueError):
    """A flow document with problems; ``problems`` holds the path and reason of each."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(
            f"{len(problems)} problem(s): {problems[0]['path']}: {problems[0]['reason']}"
        )
        self.problems = problems


def json_path(loc: tuple[int | str, ...]) -> str:
    """``("steps", "a", "buttons", 0)`` -> ``$.steps.a.buttons[0]``."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", part):
            out += f".{part}"
        else:
            out += "[" + repr(part).replace("'", '"') + "]"
    return out


def _structural(data: Any) -> tuple[FlowDocument | None, list[dict[str, str]]]:
    try:
        return FlowDocument.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
        # A list whose only items are invalid is also reported "too short": a consequence of
        # the item's own problem, not a second one.
        locs = [e["loc"] for e in errors]
        errors = [
            e
            for e in errors
            if not (
                e["type"] == "too_short"
                and any(len(o) > len(e["loc"]) and o[: len(e["loc"])] == e["loc"] for o in locs)
            )
        ]
        problems = [
            {"path": json_path(without_tags(data, err["loc"])), "reason": err["msg"]}
            for err in errors
        ]
        return None, problems


def _semantic(doc: FlowDocument) -> list[dict[str, str]]:
    """What the schema cannot say: references between steps, regexes, templates."""
    problems: list[dict[str, str]] = []
    ids = set(doc.steps)

    def ref(path: str, target: str | None) -> None:
        if target is not None and target not in ids:
            problems.append({"path": path, "reason": f"no step {target!r} in steps"})

    ref("$.start", doc.start)
    # Telegram takes the texts as HTML (values are escaped; the markup is the author's):
    # HTML it cannot parse would fail every send of the step.
    html_to_telegram = doc.format == "html" and doc.texts_are_markup
    for sid, step in doc.steps.items():
        base = f"$.steps.{sid}"
        for field in ("next", "on_invalid", "on_timeout", "default", "on_failure"):
            ref(f"{base}.{field}", getattr(step, field, None))
        for field in ("text", "retry_text"):
            value = getattr(step, field, None)
            if isinstance(value, str):
                problems.extend(_template_problems(f"{base}.{field}", value))
                if html_to_telegram:
                    problems.extend(_markup_problems(f"{base}.{field}", value))
        problems.extend(_button_problems(doc, base, step))
        if isinstance(step, SendStep):
            problems.extend(_media_problems(doc, base, step))
            seen: set[str] = set()
            for r, row in enumerate(step.buttons):
                for c, button in enumerate(row):
                    path = f"{base}.buttons[{r}][{c}]"
                    ref(f"{path}.next", button.next)
                    if button.data in seen:
                        problems.append({"path": f"{path}.data", "reason": "duplicate data"})
                    seen.add(button.data)
                    if len(button.data.encode()) > 64:
                        problems.append(
                            {"path": f"{path}.data", "reason": "more than 64 bytes in UTF-8"}
                        )
        elif isinstance(step, CampaignStep):
            problems.extend(_media_problems(doc, base, step))
        elif isinstance(step, AskStep):
            if step.validate_as == "choice" and not step.choices:
                problems.append({"path": f"{base}.choices", "reason": "choice needs choices"})
            if step.on_timeout is not None and step.timeout_s is None:
                problems.append({"path": f"{base}.timeout_s", "reason": "on_timeout needs it"})
        elif isinstance(step, BranchStep):
            for i, case in enumerate(step.cases):
                ref(f"{base}.cases[{i}].next", case.next)
                when = case.when
                if isinstance(when, RegexCondition) and (why := regex_problem(when.pattern)):
                    problems.append({"path": f"{base}.cases[{i}].when.pattern", "reason": why})
        elif isinstance(step, LeadStep):
            if step.action in ("create", "move_stage") and not step.stage:
                problems.append({"path": f"{base}.stage", "reason": f"{step.action} needs a stage"})
        elif isinstance(step, DelayStep):
            if not 1 <= step.total_s <= MAX_DELAY_S:
                problems.append(
                    {"path": base, "reason": f"a delay is 1 s to {MAX_DELAY_S} s in total"}
                )
        elif isinstance(step, SetStep) and isinstance(step.value, str):
            problems.extend(_template_problems(f"{base}.value", step.value))
        elif isinstance(step, AttributeStep | WebhookStep):
            values = step.attributes if isinstance(step, AttributeStep) else step.fields
            key = "attributes" if isinstance(step, AttributeStep) else "fields"
            for name, value in values.items():
                if isinstance(value, str):
                    problems.extend(_template_problems(f"{base}.{key}.{name}", value))
    return problems


def _button_problems(doc: FlowDocument, base: str, step: Step) -> list[dict[str, str]]:
    """A step's buttons (a choice ask's choices go out as buttons) that a channel the flow
    answers on cannot show: every run would fail at that send."""
    if isinstance(step, SendStep):
        path, count = f"{base}.buttons", sum(len(row) for row in step.buttons)
    elif isinstance(step, AskStep) and step.validate_as == "choice":
        path, count = f"{base}.choices", len(step.choices)
    else:
        return []
    # A file's caption is measured by the file's check (media_kinds).
    text = 0 if isinstance(step, SendStep) and step.media else len(step.text or "")
    hint = "; name the channels it can show in channels, or ask for a text and branch on it"
    return [
        {"path": path, "reason": f"on {channel.value}: {problem}{hint}"}
        for channel in sorted(doc.reach)
        if (problem := buttons_problem(channel, count, text)) is not None
    ]


def _media_problems(
    doc: FlowDocument, base: str, step: SendStep | CampaignStep
) -> list[dict[str, str]]:
    """A send or campaign with neither text nor file; a file, its caption or its buttons
    that a channel it goes to (the flow's, a campaign's segment's) cannot take as they are
    (every run would fail there)."""
    if step.media is None:
        return [] if step.text else [{"path": base, "reason": f"a {step.type} needs a text "
                                      "or media"}]  # fmt: skip
    problems: list[dict[str, str]] = []
    buttons = sum(len(row) for row in step.buttons) if isinstance(step, SendStep) else 0
    channels = doc.reach if isinstance(step, SendStep) else {step.segment.channel}
    # The caption as written (a placeholder's value may lengthen it: outbound measures the
    # text sent).
    caption = len(step.text or "")
    for channel in sorted(channels):
        for field, why in file_problems(channel, step.media.kind, sized=step.media.size is not None,
                                        caption=caption, buttons=buttons):  # fmt: skip
            path = f"{base}.{field}" if field in ("text", "buttons") else f"{base}.media.{field}"
            problems.append({"path": path, "reason": f"on {channel.value}: {why}"})
    return problems


def _markup_problems(path: str, template: str) -> list[dict[str, str]]:
    """The template's own HTML as Telegram would parse it (each value escaped: a letter)."""
    problem = html_problem(_PLACEHOLDER.sub("x", template))
    if problem is None:
        return []
    return [{"path": path, "reason": f"Telegram cannot parse this HTML: {problem}"}]


def _template_problems(path: str, template: str) -> list[dict[str, str]]:
    return [
        {
            "path": path,
            "reason": f"unknown placeholder {{{{{name}}}}}: use vars.<name>, contact.<field> "
            "or message.text",
        }
        for name in _PLACEHOLDER.findall(template)
        if not _REFERENCE.match(name)
    ]


def parse(text: str | bytes, media_type: str | None = None) -> Any:
    """A document written as JSON or YAML (by ``media_type``, else by trying JSON first),
    or :class:`InvalidFlowError` at ``$`` saying why it cannot be read."""
    kind = (media_type or "").split(";")[0].strip().lower()
    yaml_types = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
    if kind not in yaml_types:
        try:
            return json.loads(text)
        except RecursionError:
            # Both parsers recurse per level: brackets nested deeper than Python's stack
            # are no flow, and were a 500.
            raise InvalidFlowError([{"path": "$", "reason": NESTED.format("JSON")}]) from None
        except ValueError as exc:
            if kind in ("application/json", "text/json") or kind.endswith("+json"):
                raise InvalidFlowError([{"path": "$", "reason": f"not JSON: {exc}"}]) from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise InvalidFlowError([{"path": "$", "reason": NESTED.format("YAML")}]) from None
    except yaml.YAMLError as exc:
        raise InvalidFlowError([{"path": "$", "reason": f"not YAML: {exc}"}]) from None


NESTED = "not {}: nested deeper than any flow document"


def regex_problem(source: str) -> str | None:
    """Why ``source`` is not a pattern a flow can match with (None: it is). Flows match with
    RE2 (linear time, ``engine.pattern``), which has no backreferences or lookaround."""
    try:
        re.compile(source)
    except re.error as exc:
        return str(exc)
    try:
        re2.compile(source)
    except re2.error as exc:
        return f"not a pattern RE2 takes (no backreferences or lookaround): {exc}"
    return None


def unknown_secrets(doc: FlowDocument, known: Callable[[str], bool]) -> list[dict[str, str]]:
    """A problem for every webhook step naming a signing secret its workspace has not
    (``known`` says which it has). Pure."""
    return [
        {
            "path": f"$.steps.{step_id}.secret",
            "reason": f"no signing secret named {step.secret!r} in this workspace "
            f"(SWITCHBOARD_FLOWS_WEBHOOK_SECRETS=<workspace>/{step.secret}=whsec_...)",
        }
        for step_id, step in doc.steps.items()
        if isinstance(step, WebhookStep) and not known(step.secret)
    ]


def foreign_accounts(
    doc: FlowDocument, owned: Collection[tuple[Channel, str]]
) -> list[dict[str, str]]:
    """A problem for every account the flow's ``channels`` name that is not one of ``owned``
    (the workspace's): another workspace's bot, or none at all, would leave the flow saved
    and published but never running. Pure."""
    return [
        {
            "path": f"$.channels[{i}].account",
            "reason": f"no {scope.channel.value} account {scope.account!r} in this workspace",
        }
        for i, scope in enumerate(doc.channels)
        if scope.account and (scope.channel, scope.account) not in owned
    ]


def validate(data: Any, known_secrets: Callable[[str], bool] | None = None) -> FlowDocument:
    """The flow document, or :class:`InvalidFlowError` listing every problem."""
    if not isinstance(data, dict):
        raise InvalidFlowError([{"path": "$", "reason": "a flow document is a JSON object"}])
    doc, problems = _structural(data)
    if doc is not None:
        problems = _semantic(doc)
        if known_secrets is not None:
            problems += unknown_secrets(doc, known_secrets)
    if problems:
        raise InvalidFlowError(problems)
    assert doc is not None
    return doc
