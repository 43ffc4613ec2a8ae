"""Bot menus from the flows of a bot: which bots, which commands, and publishing only what
changed (a real bus: the command lands on the outbound stream)."""

from __future__ import annotations

from typing import Any

from switchboard.events import decode_message
from switchboard.events.catalog.outbound import SetBotCommands
from switchboard.flows.document import validate
from switchboard.flows.menus import MenuKeeper, bots, menu_command, menus
from switchboard.flows.triggers import Published
from switchboard.runtime.bus import Bus


def published(flow_id: str, triggers: list[dict[str, Any]], **extra: Any) -> Published:
    doc = validate(
        {
            "name": f"Flow {flow_id}",
            "triggers": triggers,
            "start": "a",
            "steps": {"a": {"type": "end", "text": "hi"}},
            **extra,
        }
    )
    return Published(flow_id, 1, doc)


SCOPED = published(
    "f1",
    [{"type": "command", "command": "quote", "description": "Get a quote"}, {"type": "start"}],
    channels=[{"channel": "telegram", "account": "shop"}],
)
EVERYWHERE = published("f2", [{"type": "command", "command": "help"}])
OTHER_BOT = published(
    "f3",
    [{"type": "command", "command": "quote", "description": "Other bot's quote"}],
    channels=[{"channel": "telegram", "account": "support"}],
)
VIBER = published("f4", [{"type": "command", "command": "viber"}], channels=[{"channel": "viber"}])


def test_each_bot_gets_the_commands_of_the_flows_in_its_scope() -> None:
    flows = [SCOPED, EVERYWHERE, OTHER_BOT, VIBER]
    assert bots(flows) == {"shop", "support"}
    assert menus(flows) == {
        "shop": (("quote", "Get a quote"), ("help", "Flow f2")),
        "support": (("help", "Flow f2"), ("quote", "Other bot's quote")),
    }
    first = menu_command("shop", menus(flows)["shop"])
    assert first.request_id == menu_command("shop", menus(flows)["shop"]).request_id
    assert first.request_id != menu_command("shop", ()).request_id


async def test_the_keeper_publishes_changed_menus_only(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="menus")
    try:
        await bus.provision()
        keeper = MenuKeeper(bus)
        assert await keeper.keep("ws", [SCOPED, EVERYWHERE]) == 1
        assert await keeper.keep("ws", [SCOPED, EVERYWHERE]) == 0  # nothing changed
        assert await keeper.keep("ws", [SCOPED]) == 1  # /help archived
        assert await keeper.keep("ws", []) == 1  # no flow names the bot: its menu is cleared
        msg = await bus.js.get_last_msg("OUTBOUND", "cmd.outbound.bot_commands.>")
        decoded = decode_message(msg.subject or "", dict(msg.headers or {}), msg.data or b"")
        assert isinstance(decoded.model, SetBotCommands)
        assert decoded.model.commands == ()
        assert decoded.envelope.workspace_id == "ws"
    finally:
        await bus.close()
