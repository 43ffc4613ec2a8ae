"""Bot menus: the commands of a bot's published flows become its Telegram command menu
(``setMyCommands`` through outbound), kept in step as flows are published and archived.

A bot is a Telegram account that flows of the workspace name in their ``channels``; its
menu holds the command triggers of every published flow in scope of it (flows without a
scope apply to every bot). Each instance computes the menus after reading the definitions
and publishes the ones that changed; the request id is a hash of the menu, so instances
publishing the same menu are one command (deduplicated by its id).
"""

from __future__ import annotations

from collections.abc import Iterable

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import BotCommand, SetBotCommands
from switchboard.events.ids import stable_hash
from switchboard.flows.document import CommandTrigger
from switchboard.flows.triggers import Published, in_scope
from switchboard.runtime.bus import Bus

Menu = tuple[tuple[str, str], ...]  # (command, description), in menu order


def bots(flows: Iterable[Published]) -> set[str]:
    """The Telegram accounts the flows name."""
    return {
        scope.account
        for flow in flows
        for scope in flow.doc.channels
        if scope.channel == Channel.TELEGRAM and scope.account is not None
    }


def menu(flows: Iterable[Published], account: str) -> Menu:
    """A bot's menu: the command triggers of the flows in scope of it (first one wins per
    command; the description is the trigger's, else the flow's name)."""
    seen: dict[str, str] = {}
    for flow in sorted(flows, key=lambda f: f.flow_id):
        if not in_scope(flow.doc, Channel.TELEGRAM, account):
            continue
        for trig in flow.doc.triggers:
            if isinstance(trig, CommandTrigger) and trig.command not in seen:
                seen[trig.command] = (trig.description or flow.doc.name)[:256]
    return tuple(seen.items())


def menus(flows: list[Published]) -> dict[str, Menu]:
    """Every bot's menu."""
    return {account: menu(flows, account) for account in sorted(bots(flows))}


def menu_command(account: str, items: Menu) -> SetBotCommands:
    return SetBotCommands(
        request_id="menu:" + stable_hash("menu", account, repr(items))[:32],
        channel=Channel.TELEGRAM,
        account=account,
        commands=tuple(BotCommand(command=c, description=d) for c, d in items),
    )


class MenuKeeper:
    """Publishes the menus that changed since this instance last published them."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.published: dict[tuple[str, str], Menu] = {}

    async def keep(self, workspace: str, flows: list[Published]) -> int:
        """Publish the workspace's changed menus; how many."""
        sent = 0
        current = menus(flows)
        # A bot no flow names any more keeps its last menu: clear it.
        for (ws, account), _ in list(self.published.items()):
            if ws == workspace and account not in current:
                current[account] = ()
        for account, items in current.items():
            key = (workspace, account)
            if self.published.get(key) == items:
                continue
            await self.bus.publish(menu_command(account, items), workspace_id=workspace)
            self.published[key] = items
            sent += 1
        return sent
