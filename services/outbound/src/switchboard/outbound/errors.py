"""The outbound service's exceptions under one root, so one ``except OutboundServiceError``
catches everything it raises on purpose. Each keeps the base its meaning has (a builtin, or
the runtime's failure classes) and lives beside the code that raises it.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    OutboundServiceError
    ├── ProviderError           providers.base       a failed provider call, classified
    │                                                (permanent, rate limited, retryable)
    ├── InvalidUserDataError    providers.metacapi   a user_data value Meta would refuse
    │                                                (ValueError)
    ├── SlotMissedError         http                 a request that would have left after
    │                                                its rate-limit slot: not sent
    ├── LimiterContentionError  ratelimit            too many instances raced for one key
    │                                                (RuntimeError)
    ├── UploadMissingError      uploads              a send names an upload its workspace
    │                                                does not have (LookupError)
    ├── MissingVariablesError   calendar.templates   a template names variables the post
    │                                                does not give (ValueError)
    ├── CampaignConflictError   campaigns.commands   a command that contradicts its campaign
    │                                                (runtime PermanentError: DLQ at once)
    └── ForeignAccountError     campaigns.commands   a campaign naming accounts of another
                                                     workspace (runtime PermanentError)
"""

from __future__ import annotations


class OutboundServiceError(Exception):
    """The root of every exception the outbound service raises on purpose (tree above)."""
