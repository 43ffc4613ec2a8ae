"""A flow's segment schedule (``crm.start_flow``): the expanded recipients become
``flows.start_runs`` batches that name each conversation and keep the request's ids."""

from __future__ import annotations

from switchboard.crm.campaigns import flow_batch
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import CampaignSegment, StartSegmentFlow
from switchboard.events.catalog.flows import FlowConversation
from switchboard.events.catalog.outbound import CampaignRecipient

CMD = StartSegmentFlow(
    request_id="schedule:f1:2:0:2026-12-24T09:00:00+00:00",
    flow_id="f1",
    revision=2,
    segment=CampaignSegment(channel=Channel.TELEGRAM, tags=("vip",)),
)


def test_a_batch_names_each_conversation_of_the_segment() -> None:
    recipients = [
        CampaignRecipient(recipient="7", account="demo"),
        CampaignRecipient(recipient="8", account="other"),
    ]
    batch = flow_batch(CMD, 1, recipients, final=True)
    assert (batch.request_id, batch.flow_id, batch.revision, batch.batch, batch.final) == (
        CMD.request_id,
        "f1",
        2,
        1,
        True,
    )
    assert batch.conversations == (
        FlowConversation(channel=Channel.TELEGRAM, account="demo", chat_id="7", sender_id="7"),
        FlowConversation(channel=Channel.TELEGRAM, account="other", chat_id="8", sender_id="8"),
    )


def test_batches_of_one_request_have_ids_of_their_own_and_stable_ones() -> None:
    one = [CampaignRecipient(recipient="7", account="demo")]
    ids = {flow_batch(CMD, n, one, final=False).deterministic_id() for n in (0, 1)}
    assert len(ids) == 2
    assert flow_batch(CMD, 0, one, False).deterministic_id() in ids
