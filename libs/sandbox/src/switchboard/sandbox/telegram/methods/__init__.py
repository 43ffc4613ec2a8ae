"""Bot API method handlers, registered by name in `REGISTRY` when this package is imported."""

from switchboard.sandbox.telegram.methods import (  # noqa: F401  (registration side effects)
    account,
    commands,
    editing,
    files,
    sending,
    webhook,
)
from switchboard.sandbox.telegram.methods.base import REGISTRY, Answer, Call

__all__ = ["REGISTRY", "Answer", "Call"]
