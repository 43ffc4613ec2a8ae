"""HTTP endpoint of the CAPI fake: `POST /{version}/{pixel_id}/events` (and unversioned).

Steps, each able to reject the request with a Graph error: access token (104/190),
Graph version (2635), pixel and token access (100/33), body, then event validation of
the whole batch. Only an accepted batch is stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from switchboard.sandbox.graph import GraphError, fbtrace_id
from switchboard.sandbox.metacapi.errors import (
    deprecated_version,
    error_response,
    expired_token,
    invalid_token,
    token_required,
    unknown_object,
    unknown_path,
)
from switchboard.sandbox.metacapi.params import access_token, json_param, read_params, text_param
from switchboard.sandbox.metacapi.state import Batch, MetaCapiState, Pixel
from switchboard.sandbox.metacapi.validation import validate_batch
from switchboard.sandbox.provider import route_path
from switchboard.sandbox.recorder import note_of

PROVIDER = "metacapi"
VERSION = re.compile(r"^v\d+\.\d+$")
_EVENTS_PATH = re.compile(r"^/(?:[^/]+/)?([^/]+)/events/?$")


def classify(scope: Scope) -> tuple[str | None, str | None]:
    """(pixel id, "events") read from the raw path."""
    match = _EVENTS_PATH.match(route_path(scope))
    return (match.group(1), "events") if match else (None, None)


def _graph_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%A, %d-%b-%y %H:%M:%S UTC")


class MetaCapiApi:
    """Validates and records event batches."""

    def __init__(self, state: MetaCapiState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{version}/{pixel_id}/events", self.versioned, methods=["POST"]),
            Route("/{pixel_id}/events", self.unversioned, methods=["POST"]),
        ]

    async def versioned(self, request: Request) -> Response:
        return await self._events(request, str(request.path_params["version"]))

    async def unversioned(self, request: Request) -> Response:
        return await self._events(request, None)

    async def _events(self, request: Request, version: str | None) -> Response:
        note = note_of(request.scope, PROVIDER)
        note.method = "events"
        trace = fbtrace_id()
        pixel_id = str(request.path_params["pixel_id"])
        clock = self.state.core.clock
        try:
            params = await read_params(request)
            self._check_token(access_token(request, params))
            self._check_version(version, pixel_id)
            pixel = self._pixel(pixel_id, access_token(request, params))
            note.account = pixel.id
            test_code = text_param(params, "test_event_code")
            data = json_param(params, "data")
            note.params = {"events": len(data) if isinstance(data, list) else None}
            if test_code:
                note.params["test_event_code"] = test_code
            events = validate_batch(data, clock.time(), self.state.config)
            note.accepted_at = clock.monotonic()
            self.state.record(Batch(pixel.id, version, test_code, trace, events))
        except GraphError as error:
            note.fail(error.code, error.description)
            return error_response(error, trace)
        note.succeed()
        body = {"events_received": len(events), "messages": [], "fbtrace_id": trace}
        return JSONResponse(body, headers={"x-fb-trace-id": trace})

    def _check_token(self, token: str | None) -> None:
        if token is None:
            raise token_required()
        if not self.state.knows_token(token):
            raise invalid_token()
        expired_at = self.state.expired.get(token)
        if expired_at is not None:
            now = self.state.core.clock.time()
            raise expired_token(_graph_time(expired_at), _graph_time(now))

    def _check_version(self, version: str | None, pixel_id: str) -> None:
        if version is None:
            return
        if not VERSION.match(version):
            raise unknown_path(f"/{pixel_id}/events")
        accepted = self.state.config.versions
        if accepted is not None and version not in accepted:
            raise deprecated_version(self.state.config.latest_version)

    def _pixel(self, pixel_id: str, token: str | None) -> Pixel:
        pixel = self.state.pixels.get(pixel_id)
        if pixel is None or token not in pixel.tokens:
            raise unknown_object(pixel_id)
        return pixel
