"""Block Kit builders stay within Slack's limits, escape untrusted text and carry a text fallback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.core.models import (
    Actor,
    CampaignInfo,
    CampaignPhase,
    Outcome,
    OutcomeStatus,
    RequestState,
    StopRequest,
    utcnow,
)
from bot.core.results import Preview
from bot.providers.clevertap import CleverTapAccount, CleverTapAdapter
from bot.slack import blocks

FACTS = CleverTapAdapter("prod", CleverTapAccount(account_id="A", passcode="p", region="in1")).facts


def request(**changes: Any) -> StopRequest:
    now = utcnow()
    base = StopRequest(
        id="req_abcdefghijklmnopqrstuvwx",
        provider="clevertap",
        account="prod",
        campaign_id="1457432766",
        reason="wrong <!channel> segment & price",
        requester=Actor(id="U0ALICE", name="alice"),
        channel_id="C0CHAN",
        created_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    return base.model_copy(update=changes)


def outcome(**changes: Any) -> Outcome:
    base = Outcome(
        status=OutcomeStatus.STOPPED,
        provider="clevertap",
        account="prod",
        campaign_id="1457432766",
        detail="CleverTap answered state 'stopped'.",
        http_status=200,
        attempts=1,
        elapsed_ms=321,
        confirmed_by=Actor(id="U0ALICE"),
    )
    return base.model_copy(update=changes)


def check_limits(message: dict[str, Any]) -> None:
    assert message["text"] and len(message["text"]) <= blocks.MAX_TEXT
    assert 0 < len(message["blocks"]) <= blocks.MAX_BLOCKS
    for block in message["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= blocks.MAX_HEADER
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= blocks.MAX_SECTION
            assert len(block.get("fields", [])) <= blocks.MAX_FIELDS
            assert all(len(f["text"]) <= blocks.MAX_FIELD for f in block.get("fields", []))
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
        if block["type"] == "actions":
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000
                confirm = element.get("confirm")
                if confirm:
                    assert len(confirm["title"]["text"]) <= 100
                    assert len(confirm["text"]["text"]) <= 300


def test_confirmation_card() -> None:
    card = blocks.confirmation_card(request(), FACTS, Preview(None, FACTS.no_preview_reason))
    check_limits(card)
    rendered = str(card)
    assert "<!channel>" not in rendered and "&lt;!channel&gt;" in rendered  # no mass mention from a reason
    assert "in1.api.clevertap.com" in rendered and "cannot be resumed" in rendered
    actions = next(b for b in card["blocks"] if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == [blocks.STOP_ACTION, blocks.CANCEL_ACTION]
    assert actions[0]["style"] == "danger" and actions[0]["value"] == request().id
    assert "<!date^" in rendered  # expiry shown in the reader's time zone
    assert "1457432766" in card["text"]


def test_preview_states() -> None:
    loading = blocks.confirmation_card(request(), FACTS, None)
    assert "asking the provider" in str(loading)
    stopped = Preview(CampaignInfo(name="Sale", state="stopped", phase=CampaignPhase.STOPPED, size=10))
    card = blocks.confirmation_card(request(), FACTS, stopped)
    assert "already stopped" in str(card) and "Sale" in str(card)


@pytest.mark.parametrize("status", list(OutcomeStatus))
def test_outcome_message_for_every_status(status: OutcomeStatus) -> None:
    message = blocks.outcome_message(
        request(), outcome(status=status), FACTS, permalink="https://x.slack.com/archives/C/p1"
    )
    check_limits(message)
    assert status.label in message["text"]
    assert "https://x.slack.com/archives/C/p1" in str(message)


def test_huge_untrusted_text_is_clipped() -> None:
    long = "x" * 10_000
    message = blocks.outcome_message(
        request(reason=long, campaign_id="9" * 200),
        outcome(detail=long, provider_message=long, campaign=CampaignInfo(name=long, state=long)),
        FACTS,
    )
    check_limits(message)


@pytest.mark.parametrize("state", [RequestState.CANCELLED, RequestState.EXPIRED])
def test_ended_cards(state: RequestState) -> None:
    card = blocks.ended_card(request(state=state, ended_by=Actor(id="U0ALICE")), FACTS)
    check_limits(card)
    assert not [b for b in card["blocks"] if b["type"] == "actions"]
    assert "Nothing was sent" in str(card)


def test_stopping_card_has_no_buttons() -> None:
    card = blocks.stopping_card(request(confirmed_by=Actor(id="U0ALICE")), FACTS)
    check_limits(card)
    assert not [b for b in card["blocks"] if b["type"] == "actions"]


def test_the_confirm_dialog_says_cannot_be_undone_only_where_that_is_true() -> None:
    from dataclasses import replace

    def dialog(undoable: bool) -> str:
        card = blocks.confirmation_card(request(), replace(FACTS, undoable=undoable), None)
        stop = next(e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["action_id"] == blocks.STOP_ACTION)
        return str(stop["confirm"]["text"]["text"])

    assert "cannot be undone" in dialog(False)
    assert "cannot be undone" not in dialog(True) and "can be undone" in dialog(True)


def test_cards_and_outcomes_link_to_the_provider_dashboard_where_it_has_one() -> None:
    from dataclasses import replace

    card = blocks.confirmation_card(request(), FACTS, None)
    posted = blocks.outcome_message(request(), outcome(), FACTS)
    assert FACTS.dashboard_url_template is not None
    url = FACTS.dashboard_url("1457432766")
    for message in (card, posted):
        check_limits(message)
        assert f"<{url}|Open in CleverTap>" in str(message)
    plain = replace(FACTS, dashboard_url_template=None)
    assert "Open in" not in str(blocks.confirmation_card(request(), plain, None))
    assert "Open in" not in str(blocks.outcome_message(request(), outcome(), plain))


def test_only_approval_cards_can_be_declined_and_a_declined_card_says_why() -> None:
    approval = blocks.confirmation_card(request(two_person=True), FACTS, None, "<!subteam^S0LEADS>")
    check_limits(approval)
    assert blocks.DECLINE_ACTION in str(approval)
    assert blocks.DECLINE_ACTION not in str(blocks.confirmation_card(request(), FACTS, None))
    declined = request(state=RequestState.CANCELLED, ended_by=Actor(id="U0BOB"), end_reason="declined: <!here> no")
    card = blocks.ended_card(declined, FACTS)
    check_limits(card)
    assert "Stop declined" in str(card) and "<@U0BOB>" in str(card)
    assert "<!here>" not in str(card)  # the comment is untrusted text


def test_every_message_passes_slack_sdk_model_validation() -> None:
    from slack_sdk.models.blocks import Block

    two = request(two_person=True)
    done = request(state=RequestState.DONE, outcome=outcome(status=OutcomeStatus.UNKNOWN))
    messages = [
        blocks.confirmation_card(request(), FACTS, None),
        blocks.confirmation_card(two, FACTS, Preview(None, "no preview"), "<!subteam^S0LEADS>"),
        blocks.stopping_card(request(confirmed_by=Actor(id="U0BOB")), FACTS),
        blocks.record_waiting(two, FACTS, permalink="https://fake.slack.com/archives/C0/p1"),
        blocks.record_started(request(confirmed_by=Actor(id="U0BOB")), FACTS),
        blocks.outcome_message(done, outcome(status=OutcomeStatus.UNKNOWN), FACTS),
        blocks.ended_card(request(state=RequestState.EXPIRED), FACTS),
    ]
    for message in messages:
        check_limits(message)
        for raw in message["blocks"]:
            parsed = Block.parse(raw)
            assert parsed is not None, raw
            parsed.validate_json()  # raises SlackObjectFormationError past a limit
