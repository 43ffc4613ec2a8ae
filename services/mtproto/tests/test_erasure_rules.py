"""Which of the gateway's recorded chats an erasure names, without a database."""

from __future__ import annotations

from switchboard.mtproto.erasure import erased_chats
from switchboard.runtime import pii


def test_only_the_erased_identities_of_the_workspace_get_their_marker() -> None:
    gone = pii.identity_hash("demo", "mtproto", "7001")
    found = erased_chats(["7001", "7002", pii.erased_marker(gone)], "demo", frozenset({gone}))
    assert found == {"7001": pii.erased_marker(gone)}
    assert erased_chats(["7001"], "other", frozenset({gone})) == {}  # another workspace's 7001
