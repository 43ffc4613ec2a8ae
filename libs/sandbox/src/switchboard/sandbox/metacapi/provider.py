"""The Meta Conversions API fake as a sandbox provider, with the Python API tests use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Scope

from switchboard.sandbox.metacapi.api import MetaCapiApi, classify
from switchboard.sandbox.metacapi.config import MetaCapiConfig
from switchboard.sandbox.metacapi.errors import error_response, server_error
from switchboard.sandbox.metacapi.state import CapiEvent, EventCounts, MetaCapiState, Pixel
from switchboard.sandbox.provider import Core, ProviderBase

DEMO_PIXEL_ID = "100000000000001"
DEMO_ACCESS_TOKEN = "EAADemoCapiToken"  # noqa: S105  (public dev-stack contract)


class MetaCapiProvider(ProviderBase):
    """Fake Graph Conversions API: pixels, tokens, validation, test events, dedup counts."""

    name = "metacapi"
    prefix = "/graph"

    def __init__(self, core: Core, config: MetaCapiConfig | None = None) -> None:
        self.core = core
        self.config = config or MetaCapiConfig()
        self.state = MetaCapiState(core, self.config)
        self.api: MetaCapiApi = MetaCapiApi(self.state)

    # -- Python API -------------------------------------------------------------------

    def add_pixel(
        self, pixel_id: str | int, access_token: str | None = None, *, tokens: Iterable[str] = ()
    ) -> Pixel:
        """Register a pixel and the access tokens that may post events to it."""
        wanted = ([access_token] if access_token else []) + list(tokens)
        if not wanted:
            raise ValueError("give at least one access token")
        return self.state.add_pixel(str(pixel_id), wanted)

    def add_demo_pixel(self) -> Pixel:
        """The dev-stack contract: pixel `100000000000001`, token `EAADemoCapiToken`."""
        return self.add_pixel(DEMO_PIXEL_ID, DEMO_ACCESS_TOKEN)

    def pixel(self, pixel_id: str | int) -> Pixel:
        found = self.state.pixels.get(str(pixel_id))
        if found is None:
            raise KeyError(f"no pixel {pixel_id!r} in the sandbox")
        return found

    def expire_token(self, access_token: str) -> None:
        """From now on the token gets Graph's 190/463 "session has expired" error."""
        self.state.expire_token(access_token)

    def events(
        self,
        pixel_id: str | int | None = None,
        *,
        event_name: str | None = None,
        duplicate: bool | None = None,
    ) -> list[CapiEvent]:
        """Live (non-test) events received, oldest first, with their duplicate flag."""
        return _select(self.state.events, pixel_id, event_name, duplicate)

    def test_events(
        self, pixel_id: str | int | None = None, *, code: str | None = None
    ) -> list[CapiEvent]:
        """Events sent with a `test_event_code` (optionally one code), oldest first."""
        found = _select(self.state.test_events, pixel_id, None, None)
        return [e for e in found if code is None or e.test_event_code == code]

    def counts(
        self, pixel_id: str | int | None = None, *, event_name: str | None = None
    ) -> EventCounts:
        """Received, unique and duplicate live events (optionally of one pixel or name)."""
        found = self.events(pixel_id, event_name=event_name)
        duplicates = sum(1 for e in found if e.duplicate)
        return EventCounts(len(found), len(found) - duplicates, duplicates)

    # -- Provider contract ------------------------------------------------------------

    def control_routes(self) -> list[BaseRoute]:
        from switchboard.sandbox.metacapi.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        return classify(scope)

    def error_response(self, status: int, description: str) -> Response:
        return error_response(server_error(status, description))

    def snapshot(self) -> dict[str, Any]:
        return {
            "pixels": [p.summary() for p in self.state.pixels.values()],
            "events": self.counts().to_json(),
            "test_events": len(self.state.test_events),
            "config": self.config.to_json(),
        }

    async def reset(self) -> None:
        self.state.clear()


def _select(
    events: list[CapiEvent],
    pixel_id: str | int | None,
    event_name: str | None,
    duplicate: bool | None,
) -> list[CapiEvent]:
    pixel = None if pixel_id is None else str(pixel_id)
    return [
        e
        for e in events
        if (pixel is None or e.pixel_id == pixel)
        and (event_name is None or e.event_name == event_name)
        and (duplicate is None or e.duplicate == duplicate)
    ]
