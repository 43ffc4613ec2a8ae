"""Keyed identity hashes and the scrubbing of outbound attempt records, without NATS."""

from __future__ import annotations

import hashlib

from switchboard.crm import keys
from switchboard.outbound import erasure
from switchboard.outbound.attempts import Attempt
from switchboard.runtime import identity


def test_identity_hashes_are_keyed_with_the_pepper() -> None:
    plain = hashlib.sha256("\x1f".join(("erased", "w", "whatsapp", "4917612345678")).encode())
    try:
        identity.configure("pepper-one-0123456789")
        one = keys.erased_identity_hash("w", "whatsapp", "4917612345678")
        identity.configure("pepper-two-0123456789")
        two = keys.erased_identity_hash("w", "whatsapp", "4917612345678")
    finally:
        identity.configure(identity.DEV_PEPPER)
    assert one != two  # a cached hash never outlives a pepper change
    assert plain.hexdigest()[:32] not in (one, two)


def test_crm_and_outbound_name_an_erased_identity_alike() -> None:
    # outbound finds records by the hashes the CRM puts in ContactErased
    assert erasure.identity_hash("w", "viber", "u1") == keys.erased_identity_hash(
        "w", "viber", "u1"
    )
    assert erasure.marker(erasure.identity_hash("w", "viber", "u1")) == keys.erased_marker(
        keys.erased_identity_hash("w", "viber", "u1")
    )


def _record(workspace: str, recipient: str) -> Attempt:
    record = Attempt(
        message_id="m1", workspace_id=workspace, channel="whatsapp", account="a",
        recipient=recipient,
    )  # fmt: skip
    return record.step("failed", reason=f"{recipient} not on WhatsApp", attempts=1)


def test_scrub_takes_the_recipient_and_reasons_of_the_erased_only() -> None:
    h = frozenset({erasure.identity_hash("w", "whatsapp", "4917612345678")})
    scrubbed = erasure.scrub(_record("w", "4917612345678"), "w", h)
    assert scrubbed is not None
    assert "4917612345678" not in scrubbed.model_dump_json()
    assert (scrubbed.status, scrubbed.attempts, len(scrubbed.history)) == ("failed", 1, 1)
    assert erasure.scrub(scrubbed, "w", h) is None  # already done
    assert erasure.scrub(_record("w", "4917600000000"), "w", h) is None  # someone else
    assert erasure.scrub(_record("x", "4917612345678"), "w", h) is None  # other workspace


def test_a_send_that_has_not_left_fails_as_erased_and_one_that_has_keeps_its_status() -> None:
    h = frozenset({erasure.identity_hash("w", "whatsapp", "4917612345678")})
    queued = Attempt(
        message_id="m2", workspace_id="w", channel="whatsapp", account="a",
        recipient="4917612345678", owner=7,
    )  # fmt: skip
    for pending in (queued, queued.step("retrying", reason="busy", attempts=1)):
        stopped = erasure.scrub(pending, "w", h)
        assert stopped is not None
        assert (stopped.status, stopped.error_code, stopped.permanent) == (
            "failed", "erased", True,
        )  # fmt: skip
        assert stopped.recipient.startswith("erased:")
        assert "4917612345678" not in stopped.model_dump_json()
        markers = frozenset(erasure.marker(x) for x in h)
        assert erasure.withdrawn(stopped, "w", markers)  # its command goes, again if need be
        assert not erasure.withdrawn(stopped, "x", markers)
    sent = erasure.scrub(queued.step("sent", provider_message_id="p1"), "w", h)
    assert sent is not None
    assert (sent.status, sent.error_code) == ("sent", None)
    assert not erasure.withdrawn(sent, "w", frozenset(erasure.marker(x) for x in h))


def test_a_campaign_batch_names_the_erased_by_their_marker_and_keeps_its_positions() -> None:
    h = erasure.identity_hash("w", "mtproto", "777")
    rows = [["111", None], ["777", "acct"], ["222", "bot"]]
    scrubbed = erasure.scrub_rows(rows, "w", ("telegram", "mtproto"), frozenset({h}))
    assert scrubbed == [["111", None], [erasure.marker(h), "acct"], ["222", "bot"]]
    assert erasure.scrub_rows(scrubbed, "w", ("telegram", "mtproto"), frozenset({h})) is None
    assert erasure.scrub_rows(rows, "w", ("telegram",), frozenset({h})) is None  # other channel
    assert erasure.scrub_rows(rows, "x", ("mtproto",), frozenset({h})) is None  # other workspace


def test_an_erasure_s_line_stops_the_person_s_commands_behind_it_only() -> None:
    h = erasure.identity_hash("w", "telegram", "4001")
    stones = {erasure.tombstone_key("w", h): erasure.Tombstone(before=10, cause="e1")}
    cases = [  # (workspace, channel, recipient, stream sequence) -> marker or None
        (("w", "telegram", "4001", 3), erasure.marker(h)),
        (("w", "telegram", "4001", 10), erasure.marker(h)),  # the line itself
        (("w", "telegram", "4001", 11), None),  # published after: someone writing again
        (("w", "telegram", "4002", 3), None),  # someone else
        (("w", "viber", "4001", 3), None),  # the same id on another channel is another one
        (("other", "telegram", "4001", 3), None),  # another workspace's chat 4001
        (("w", "telegram", erasure.marker(h), 3), None),  # already named by the marker
    ]
    for args, expected in cases:
        assert erasure.erased_as(stones, *args) == expected, args
    assert erasure.erased_as({}, "w", "telegram", "4001", 3) is None


def test_tombstones_are_forgotten_once_every_command_behind_them_has_left() -> None:
    mirror = erasure.ErasedSends(None)  # type: ignore[arg-type]  # no bucket before run()
    mirror.entries = {"a": erasure.Tombstone(before=5), "b": erasure.Tombstone(before=9)}
    mirror.prune(first_seq=6)  # sequences up to 5 are gone from the stream
    assert list(mirror.entries) == ["b"]
    mirror.prune(first_seq=9)  # 9 may still be there
    assert list(mirror.entries) == ["b"]
