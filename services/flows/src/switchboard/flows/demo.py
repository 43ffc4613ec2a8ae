"""The demo flow that ``just up`` publishes on the demo bot: a greeting with two buttons,
a quote request that asks for a name and a validated phone number, tags the contact, moves
its lead to ``qualified`` and thanks; or a hand-off to a person."""

from __future__ import annotations

from typing import Any

DEMO_NAME = "Demo: get a quote or talk to a person"

DEMO_FLOW: dict[str, Any] = {
    "name": DEMO_NAME,
    "description": "Published by `just up` on the demo Telegram bot.",
    "channels": [{"channel": "telegram", "account": "demo"}],
    "triggers": [
        {"type": "start"},
        # In the bot's command menu (setMyCommands), kept in step by the flows service.
        {"type": "command", "command": "quote", "description": "Get a quote or talk to a person"},
    ],
    "start": "greet",
    "steps": {
        "greet": {
            "type": "send",
            "text": "Hi {{ contact.first_name }}! How can we help you today?",
            "buttons": [
                [{"text": "Get a quote", "data": "quote", "next": "ask_name"}],
                [{"text": "Talk to a person", "data": "person", "next": "handoff"}],
            ],
        },
        "ask_name": {
            "type": "ask",
            "text": "Happy to help. What is your name?",
            "var": "name",
            "validate": "text",
            "next": "ask_phone",
        },
        "ask_phone": {
            "type": "ask",
            "text": "Thanks, {{ vars.name }}. Which phone number can we call, with country code?",
            "var": "phone",
            "validate": "phone",
            "retry_text": "That does not look like a phone number. Please send it with the "
            "country code, for example +44 20 7946 0958.",
            "next": "tag",
        },
        "tag": {"type": "tag", "add": ["quote-request"], "next": "qualify"},
        "qualify": {"type": "lead", "action": "move_stage", "stage": "qualified", "next": "thanks"},
        "thanks": {
            "type": "end",
            "text": "Thank you, {{ vars.name }}! We will call you at {{ vars.phone }} shortly.",
        },
        "handoff": {"type": "handoff", "text": "A person will answer you here shortly."},
    },
}
