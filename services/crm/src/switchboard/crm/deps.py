"""Request dependencies shared by the CRM's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from switchboard.runtime.auth import ApiKeyAuth


def _workspace(request: Request) -> str:
    """The workspace of the request's API key (401 otherwise)."""
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(_workspace)]
