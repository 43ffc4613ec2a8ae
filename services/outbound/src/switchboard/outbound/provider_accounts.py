"""Accounts of providers that are not chat channels (Meta CAPI pixels, SendPulse).

The account registry is keyed by chat channel, which has no value for these, so they are
registered as ``generic`` accounts naming their provider: ``settings["provider"]`` is
``"metacapi"`` (id: the pixel / dataset id, ``secrets["access_token"]``, optional
``settings["graph_version"]``, ``settings["api_base_url"]``, ``secrets["app_secret"]``) or
``"sendpulse"`` (``secrets["client_id"]`` and ``["client_secret"]``, optional
``settings["api_base_url"]``). A ``generic`` account without that setting is a webhook
endpoint and is never used for these.
"""

from __future__ import annotations

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account, AccountCache


def provider_account(
    accounts: AccountCache, provider: str, account_id: str, workspace: str
) -> Account | None:
    """The registered account of ``provider`` with this id in ``workspace``, if there is one
    (another workspace's account is unknown)."""
    found = accounts.owned(Channel.GENERIC, account_id, workspace)
    if found is None or found.settings.get("provider") != provider:
        return None
    return found
