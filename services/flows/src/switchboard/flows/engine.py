"""The decisions of a run, as pure functions: ``decide(run, flow, input) -> Decision``.

No I/O here. A decision is the run's next state, a record of each step taken, and the
effects to carry out (sends, timers, CRM changes), each with an id derived from the run and
a counter, so carrying a decision out twice has the effect of carrying it out once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import phonenumbers
import re2
from email_validator import EmailNotValidError, validate_email

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.flows import (
    FlowConversation,
    RunEffect,
    RunStatus,
    StepRecord,
    Waiting,
)
from switchboard.events.ids import stable_hash
from switchboard.flows.document import (
    AskStep,
    AttributeCondition,
    AttributeStep,
    BranchStep,
    Button,
    CampaignStep,
    Case,
    DelayStep,
    EndStep,
    FlowDocument,
    GotoStep,
    HandoffStep,
    KeywordCondition,
    LeadStep,
    Media,
    RegexCondition,
    SendStep,
    SetStep,
    StageCondition,
    TagCondition,
    TagStep,
    VarCondition,
    WebhookStep,
)
from switchboard.flows.templates import render, render_plain

MAX_STEPS_PER_DECISION = 100
DEFAULT_RETRY = "Sorry, that does not look right. {question}"

InputKind = Literal["start", "text", "button", "timer", "release", "webhook", "event"]


@dataclass(frozen=True)
class WebhookResult:
    """How a webhook step's call went: the receiver's status and JSON answer, or why not."""

    status: int | None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Input:
    """What a run reacts to: its start, a text (maybe with the ad or link it came from), a
    button press (with the provider's id of the press, answered once), a timer, a release,
    a webhook call's result, or an event that only starts flows (``event`` with ``data``)."""

    kind: InputKind
    id: str
    at: datetime
    text: str | None = None
    data: str | None = None
    timer_id: str | None = None
    callback_id: str | None = None
    result: WebhookResult | None = None
    event: str | None = None  # kind "event": conversation_started, lead_stage, tag_added
    referral: tuple[str, str | None] | None = None  # a text's (source, campaign)
    # Ids the same input had in a conversation before (a scheduled start's id under the
    # conversation's legacy session id): consumed under any of them, it is consumed.
    known_as: tuple[str, ...] = ()


LEAD_VAR = "lead_id"
"""The variable holding the lead a run's ``create`` step opened."""


def created_lead_id(effect_id: str) -> str:
    """The id of the lead a ``create`` effect opens: derived from the effect's own id, so
    deciding or publishing it again names the same lead (the CRM creates it once)."""
    return "ld_" + stable_hash("flow-lead", effect_id)[:24]


@dataclass(frozen=True)
class ContactFacts:
    """What the CRM knows of the run's contact that conditions may ask about."""

    attributes: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    stage: str | None = None


@dataclass(frozen=True)
class RunState:
    """A run between decisions (what ``flows.run_recorded`` carries)."""

    run_id: str
    flow_id: str
    revision: int
    conversation: FlowConversation
    status: RunStatus = RunStatus.RUNNING
    cursor: str | None = None
    waiting: Waiting | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    counter: int = 0

    @property
    def active(self) -> bool:
        return self.status is not RunStatus.ENDED


@dataclass(frozen=True)
class Decision:
    state: RunState
    steps: tuple[StepRecord, ...]
    effects: tuple[RunEffect, ...]


def new_run(
    run_id: str, flow_id: str, revision: int, flow: FlowDocument, conv: FlowConversation
) -> RunState:
    return RunState(
        run_id=run_id,
        flow_id=flow_id,
        revision=revision,
        conversation=conv,
        variables=dict(flow.variables),
    )


def uses_contact(flow: FlowDocument) -> bool:
    """Whether a flow's conditions read the CRM contact (its facts are then loaded first)."""
    return any(
        isinstance(case.when, TagCondition | AttributeCondition | StageCondition)
        for step in flow.steps.values()
        if isinstance(step, BranchStep)
        for case in step.cases
    )


def decide(
    run: RunState, flow: FlowDocument, inp: Input, facts: ContactFacts | None = None
) -> Decision | None:
    """The run's reaction to ``inp``; None when the input is not for this run (nothing to
    record: e.g. a text while the run waits for a button, or a timer it no longer waits for).
    ``facts`` is the CRM contact as conditions see it (empty when not loaded).
    """
    ctx = _Context(run, flow, inp, facts or ContactFacts())
    if inp.kind == "start":
        ctx.answer_press()  # a button trigger's press
        ctx.cursor = flow.start
        ctx.status = RunStatus.RUNNING
        return ctx.advance()
    waiting = run.waiting
    if not run.active or waiting is None:
        return None
    step = flow.steps.get(waiting.step)
    if waiting.kind == "reply" and isinstance(step, AskStep):
        return _answer(ctx, step, waiting, inp)
    pressed = _pressed(run, inp)
    if waiting.kind == "button" and pressed is not None and pressed in waiting.buttons:
        ctx.record(waiting.step, "send", "pressed", data=pressed)
        ctx.answer_press()
        ctx.cursor = waiting.buttons[pressed]
        return ctx.advance()
    if waiting.kind == "delay" and inp.kind == "timer" and inp.timer_id == waiting.timer_id:
        ctx.record(waiting.step, "delay", "elapsed")
        ctx.cursor = getattr(step, "next", None)
        return ctx.advance()
    if waiting.kind == "webhook" and inp.kind == "webhook" and inp.timer_id == waiting.timer_id:
        return _webhook_result(ctx, step, waiting, inp.result)
    if waiting.kind == "handoff" and inp.kind == "release":
        ctx.record(waiting.step, "handoff", "released")
        ctx.status = RunStatus.RUNNING
        ctx.cursor = getattr(step, "next", None)
        return ctx.advance()
    return None


def _pressed(run: RunState, inp: Input) -> str | None:
    """The data of the button ``inp`` pressed, if it is a press: a callback's data, or on
    Viber, where a keyboard's reply button sends its data back as the user's message (there
    is no callback), that message's text."""
    if inp.kind == "button":
        return inp.data
    if inp.kind == "text" and run.conversation.channel is Channel.VIBER:
        return inp.text
    return None


def _answer(ctx: _Context, step: AskStep, waiting: Waiting, inp: Input) -> Decision | None:
    if inp.kind == "timer":
        if inp.timer_id != waiting.timer_id:
            return None
        ctx.record(waiting.step, "ask", "timed_out")
        ctx.cursor = step.on_timeout
        return ctx.advance()
    if inp.kind == "button" and step.choices:
        answer = inp.data
    elif inp.kind == "text":
        answer = inp.text
    else:
        return None
    value = validate_answer(step, answer or "")
    if value is not None:
        ctx.variables[step.var] = value
        ctx.record(waiting.step, "ask", "answered", var=step.var, value=value)
        ctx.cursor = step.next
        return ctx.advance()
    attempts = waiting.attempts + 1
    if attempts >= step.max_attempts:
        ctx.record(waiting.step, "ask", "gave_up", attempts=attempts)
        ctx.cursor = step.on_invalid
        return ctx.advance()
    ctx.record(waiting.step, "ask", "invalid", attempts=attempts, answer=answer or "")
    retry = step.retry_text or DEFAULT_RETRY.replace("{question}", step.text)
    ctx.send(retry, _choice_buttons(step))
    ctx.waiting = waiting.model_copy(update={"attempts": attempts})
    ctx.status = RunStatus.WAITING
    return ctx.decision()


def _webhook_result(
    ctx: _Context, step: object, waiting: Waiting, result: WebhookResult | None
) -> Decision:
    assert isinstance(step, WebhookStep)
    result = result or WebhookResult(status=None, error="no result")
    saved, missing = extract(step.save, result.body) if result.ok else ({}, [])
    if result.ok and not missing:
        ctx.variables.update(saved)
        ctx.record(waiting.step, "webhook", "ok", status=result.status, saved=saved)
        ctx.cursor = step.next
    else:
        reason = result.error or (
            f"HTTP {result.status}" if not result.ok else f"no {', '.join(missing)} in the answer"
        )
        ctx.record(waiting.step, "webhook", "failed", status=result.status, reason=reason)
        ctx.cursor = step.on_failure
    return ctx.advance()


def extract(save: dict[str, str], body: Any) -> tuple[dict[str, Any], list[str]]:
    """The variables ``save`` maps from a JSON answer (dotted paths; digits index lists),
    and the paths the answer does not have."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for var, path in save.items():
        node: Any = body
        for part in path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                missing.append(path)
                break
        else:
            values[var] = node
    return values, missing


def validate_answer(step: AskStep, answer: str) -> str | float | None:
    """The stored value of a valid answer, None for an invalid one."""
    text = answer.strip()
    if not text:
        return None
    kind = step.validate_as
    if kind == "text":
        return text
    if kind == "number":
        try:
            number = float(text.replace(",", ".").replace(" ", ""))
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    if kind == "email":
        try:
            return str(validate_email(text, check_deliverability=False).normalized)
        except EmailNotValidError:
            return None
    if kind == "phone":
        return normalize_phone(text)
    folded = {c.casefold(): c for c in step.choices}
    return folded.get(text.casefold())


def normalize_phone(text: str) -> str | None:
    """E.164 (``+4915112345678``) of a valid international number, else None."""
    digits = re.sub(r"[^\d+]", "", text)
    candidate = digits if digits.startswith("+") else "+" + digits.lstrip("0")
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def holds(
    case: Case,
    variables: dict[str, Any],
    tags: tuple[str, ...],
    text: str | None,
    facts: ContactFacts | None = None,
) -> bool:
    """Whether a branch case's condition holds (``tags``: the run's and the contact's)."""
    cond = case.when
    facts = facts or ContactFacts()
    result: bool
    if isinstance(cond, VarCondition):
        result = _compare(variables.get(cond.name), cond.op, cond.value)
    elif isinstance(cond, TagCondition):
        result = cond.tag in tags or cond.tag in facts.tags
    elif isinstance(cond, AttributeCondition):
        result = _compare(facts.attributes.get(cond.name), cond.op, cond.value)
    elif isinstance(cond, StageCondition):
        result = facts.stage is not None and facts.stage in cond.stages
    elif isinstance(cond, KeywordCondition):
        result = text is not None and any(_has_word(text, k) for k in cond.keywords)
    elif isinstance(cond, RegexCondition):
        result = text is not None and pattern(cond.pattern).search(text) is not None
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(cond)
    return result != case.negate


@functools.lru_cache(maxsize=1024)
def pattern(source: str) -> re2._Regexp[str]:
    """A flow's regex, compiled by RE2. The pattern is a tenant's and the text a customer's:
    a backtracking engine (``re``) takes exponential time on some pairs (``^(a+)+$`` on
    64 a's and a bang: 2^64 steps), which stopped the one event loop every workspace's runs
    share. RE2 matches in time linear in the text."""
    return re2.compile(source)


def _has_word(text: str, keyword: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text, re.IGNORECASE) is not None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "exists":
        return actual is not None
    if op == "missing":
        return actual is None
    if actual is None:
        return op == "ne"
    if op in ("gt", "lt"):
        a, b = _number(actual), _number(expected)
        if a is None or b is None:
            return False
        return a > b if op == "gt" else a < b
    if op == "contains":
        return str(expected).casefold() in str(actual).casefold()
    a_num, b_num = _number(actual), _number(expected)
    same = a_num == b_num if a_num is not None and b_num is not None else actual == expected
    return same if op == "eq" else not same


def _choice_buttons(step: AskStep) -> tuple[tuple[Button, ...], ...]:
    return tuple((Button(text=c, data=c),) for c in step.choices)


class _Context:
    """A decision being built: the mutable copy of the run's state and what happened."""

    def __init__(self, run: RunState, flow: FlowDocument, inp: Input, facts: ContactFacts) -> None:
        self.run, self.flow, self.inp = run, flow, inp
        # The contact as conditions see it, with this decision's own changes applied.
        self.facts = replace(facts, attributes=dict(facts.attributes))
        self.status = run.status
        self.cursor = run.cursor
        self.waiting: Waiting | None = None
        self.variables = dict(run.variables)
        self.tags = list(run.tags)
        self.counter = run.counter
        self.steps: list[StepRecord] = []
        self.effects: list[RunEffect] = []

    def record(self, step: str, type_: str, outcome: str, **detail: Any) -> None:
        self.steps.append(StepRecord(step=step, type=type_, outcome=outcome, detail=detail))

    def effect(self, kind: Any, **data: Any) -> str:
        self.counter += 1
        effect_id = f"{self.run.run_id}:{self.counter}"
        self.effects.append(RunEffect(id=effect_id, kind=kind, data=data))
        return effect_id

    def scope(self) -> dict[str, dict[str, Any]]:
        conv = self.run.conversation
        return {
            "vars": self.variables,
            "contact": {"first_name": conv.first_name, "username": conv.username},
            "message": {"text": self.inp.text},
        }

    def answer_press(self) -> None:
        """Stop the pressed button's spinner (Telegram answers a callback query once)."""
        if self.inp.callback_id:
            self.effect("answer", callback_id=self.inp.callback_id)

    def content(
        self, template: str | None, channel: Channel, media: Media | None = None
    ) -> dict[str, Any]:
        """A message's ``text`` and ``parse_mode`` for ``channel`` from a template, with
        its ``media`` when it is a file's caption."""
        fmt = self.flow.format
        text, parse_mode = (None, None)
        if template:
            text, parse_mode = render(
                template, self.scope(), channel, fmt, markup=self.flow.texts_are_markup
            )
        if media is None:
            return {"text": text, "parse_mode": parse_mode}
        # A caption reads as a text does: with its parse mode where Telegram reads one.
        file = media.model_dump(mode="json", exclude_none=True)
        return {"text": text, "parse_mode": parse_mode, "media": file}

    def send(
        self,
        template: str | None,
        buttons: tuple[tuple[Button, ...], ...] = (),
        media: Media | None = None,
    ) -> str:
        rows = [[{"text": b.text, "data": b.data} for b in row] for row in buttons]
        content = self.content(template, self.run.conversation.channel, media)
        return self.effect("send", **content, buttons=rows)

    def timer(self, seconds: int) -> tuple[str, datetime]:
        due = self.inp.at + timedelta(seconds=seconds)
        self.counter += 1
        timer_id = f"{self.run.run_id}:{self.counter}"
        self.effects.append(RunEffect(id=timer_id, kind="timer", data={"due_at": due.isoformat()}))
        return timer_id, due

    def advance(self) -> Decision:
        """Run steps from the cursor until one waits or the flow ends."""
        for _ in range(MAX_STEPS_PER_DECISION):
            if self.cursor is None:
                self.status = RunStatus.ENDED
                return self.decision()
            sid = self.cursor
            step = self.flow.steps[sid]
            if isinstance(step, SendStep):
                msg = self.send(step.text, step.buttons, step.media)
                targets = {b.data: b.next for row in step.buttons for b in row if b.next}
                self.record(sid, "send", "sent", message=msg)
                if targets:
                    return self.wait(Waiting(step=sid, kind="button", buttons=targets))
                self.cursor = step.next
            elif isinstance(step, AskStep):
                msg = self.send(step.text, _choice_buttons(step))
                timer_id, due = (None, None)
                if step.timeout_s:
                    timer_id, due = self.timer(step.timeout_s)
                self.record(sid, "ask", "asked", message=msg)
                return self.wait(Waiting(step=sid, kind="reply", timer_id=timer_id, due_at=due))
            elif isinstance(step, BranchStep):
                target = step.default
                matched = "default"
                for i, case in enumerate(step.cases):
                    if holds(case, self.variables, tuple(self.tags), self.inp.text, self.facts):
                        target, matched = case.next, str(i)
                        break
                self.record(sid, "branch", f"matched:{matched}", next=target)
                self.cursor = target
            elif isinstance(step, SetStep):
                value = step.value
                if isinstance(value, str):
                    value = render_plain(value, self.scope())
                self.variables[step.var] = value
                self.record(sid, "set", "set", var=step.var, value=value)
                self.cursor = step.next
            elif isinstance(step, TagStep):
                self.tags = [t for t in self.tags if t not in step.remove]
                self.tags += [t for t in step.add if t not in self.tags]
                kept = [t for t in self.facts.tags if t not in step.remove]
                self.facts = replace(
                    self.facts, tags=(*kept, *(t for t in step.add if t not in kept))
                )
                self.effect("tag", add=list(step.add), remove=list(step.remove))
                self.record(sid, "tag", "tagged", add=list(step.add), remove=list(step.remove))
                self.cursor = step.next
            elif isinstance(step, AttributeStep):
                values = {
                    k: render_plain(v, self.scope()) if isinstance(v, str) else v
                    for k, v in step.attributes.items()
                }
                self.facts.attributes.update(values)
                self.effect("attribute", attributes=values)
                self.record(sid, "set_attribute", "set", attributes=values)
                self.cursor = step.next
            elif isinstance(step, WebhookStep):
                payload = {
                    "type": "flow.webhook",
                    "data": {
                        "run_id": self.run.run_id,
                        "flow_id": self.run.flow_id,
                        "step": sid,
                        "channel": self.run.conversation.channel.value,
                        "chat_id": self.run.conversation.chat_id,
                        "variables": dict(self.variables),
                        "fields": {
                            k: render_plain(v, self.scope()) if isinstance(v, str) else v
                            for k, v in step.fields.items()
                        },
                    },
                }
                call = self.effect(
                    "webhook",
                    url=step.url,
                    secret=step.secret,
                    payload=payload,
                    timeout_s=step.timeout_s,
                )
                self.record(sid, "webhook", "called", call=call)
                return self.wait(Waiting(step=sid, kind="webhook", timer_id=call))
            elif isinstance(step, CampaignStep):
                campaign = self.effect(
                    "campaign",
                    segment=step.segment.model_dump(mode="json", exclude_none=True),
                    **self.content(step.text, step.segment.channel, step.media),
                    title=step.title,
                )
                self.record(sid, "campaign", "started", campaign=f"flow:{campaign}")
                self.cursor = step.next
            elif isinstance(step, LeadStep):
                # A lead this run created is the one its later lead steps act on.
                lead: dict[str, Any] = (
                    {"lead_id": self.variables[LEAD_VAR]} if LEAD_VAR in self.variables else {}
                )
                if step.action == "create":
                    lead_id = created_lead_id(f"{self.run.run_id}:{self.counter + 1}")
                    self.effect("lead_stage", stage=step.stage, create=True, lead_id=lead_id)
                    self.variables[LEAD_VAR] = lead_id
                    self.facts = replace(self.facts, stage=step.stage)
                elif step.action == "move_stage":
                    self.facts = replace(self.facts, stage=step.stage)
                    self.effect("lead_stage", stage=step.stage, **lead)
                else:
                    self.effect("lead_assign", assignee=step.assignee, **lead)
                self.record(sid, "lead", step.action, stage=step.stage, assignee=step.assignee)
                self.cursor = step.next
            elif isinstance(step, DelayStep):
                timer_id, due = self.timer(step.total_s)
                self.record(sid, "delay", "waiting", due_at=due.isoformat())
                return self.wait(Waiting(step=sid, kind="delay", timer_id=timer_id, due_at=due))
            elif isinstance(step, HandoffStep):
                if step.text:
                    self.send(step.text)
                self.record(sid, "handoff", "handed_off")
                self.waiting = Waiting(step=sid, kind="handoff")
                self.status = RunStatus.HANDED_OFF
                return self.decision()
            elif isinstance(step, GotoStep):
                self.record(sid, "goto", "went", next=step.next)
                self.cursor = step.next
            elif isinstance(step, EndStep):
                if step.text:
                    self.send(step.text)
                self.record(sid, "end", "ended")
                self.cursor = None
        self.record(self.cursor or "?", "engine", "step_limit", limit=MAX_STEPS_PER_DECISION)
        self.cursor = None
        self.status = RunStatus.ENDED
        return self.decision()

    def wait(self, waiting: Waiting) -> Decision:
        self.waiting = waiting
        self.status = RunStatus.WAITING
        return self.decision()

    def decision(self) -> Decision:
        if self.status is RunStatus.ENDED:
            self.cursor, self.waiting = None, None
        elif self.waiting is not None:
            self.cursor = self.waiting.step
        state = replace(
            self.run,
            status=self.status,
            cursor=self.cursor,
            waiting=self.waiting,
            variables=self.variables,
            tags=tuple(self.tags),
            counter=self.counter,
        )
        return Decision(state=state, steps=tuple(self.steps), effects=tuple(self.effects))
