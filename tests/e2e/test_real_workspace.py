"""The app in a real workspace, over real HTTP: every payload of the corpus (copied from Slack's
docs and SDK test suites, in a standard workspace, an Enterprise Grid workspace and an org-wide
install) is accepted, and every conversation gets its outcome, whatever it lets the app do.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.core.models import RequestState
from bot.sandbox.base import Fault, FaultKind
from bot.slack.blocks import CANCEL_ACTION, CHECK_AGAIN_ACTION, DECLINE_ACTION, STOP_ACTION
from bot.slack.views import FORM_CALLBACK
from tests import slack_corpus, slack_requests
from tests.e2e.conftest import CHANNEL, INCIDENT, AppUnderTest, StartApp, buttons, message_text, sign
from tests.fakes.slack import Failure

CLEVERTAP = "1457432766"
PRIVATE = "G0PRIVATE"
DM = "D0ALICEDM"


def values_for(fixture: slack_corpus.Fixture, app: AppUnderTest, request_id: str) -> dict[str, str]:
    """What a test fills into a corpus payload: the kind's user, our channel, a fresh response URL."""
    return {
        "user_id": slack_corpus.default_user(fixture.kind), "channel_id": CHANNEL,
        "response_url": app.slack.response_url(), "request_id": request_id, "text": f"clevertap {CLEVERTAP} x",
        "event_id": f"Ev{fixture.kind}{fixture.surface}", "challenge": "challenge-token", "message_text": "hello",
        "private_metadata": json.dumps({"channel": CHANNEL, "request": request_id}), "target": "clevertap:default",
        "campaign_id": CLEVERTAP, "reason": "corpus", "selected_conversation": CHANNEL, "comment": "no",
    }


async def send_fixture(app: AppUnderTest, fixture: slack_corpus.Fixture, request_id: str = "") -> httpx.Response:
    body, content_type = slack_corpus.body(fixture, **values_for(fixture, app, request_id))
    if fixture.surface == "ssl_check":  # Slack's probe of the request URL comes unsigned
        return await app.http.post(f"{app.url}/slack/events", content=body, headers={"Content-Type": content_type})
    return await app.post_signed(body, content_type)


async def pending_request(app: AppUnderTest, user: str) -> str:
    ack = await app.command(f"clevertap {CLEVERTAP} corpus", user=user)
    assert ack.status_code == 200, ack.text
    request_id: str = buttons(ack.json())[STOP_ACTION]["value"]
    return request_id


@pytest.mark.parametrize("fixture", slack_corpus.all_fixtures(), ids=lambda f: f"{f.surface}-{f.kind}")
async def test_every_payload_slack_sends_is_accepted(app: AppUnderTest, fixture: slack_corpus.Fixture) -> None:
    request_id = await pending_request(app, slack_corpus.default_user(fixture.kind))
    response = await send_fixture(app, fixture, request_id)
    assert response.status_code == 200, (response.status_code, response.text)
    assert "malformed" not in response.text
    if fixture.surface == "url_verification":
        assert response.json() == {"challenge": "challenge-token"}
    await app.runtime.tasks.wait_idle()


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
async def test_a_stop_runs_end_to_end_in_every_workspace_kind(app: AppUnderTest, kind: str) -> None:
    alice = slack_corpus.default_user(kind)
    ack = await app.post_signed(
        slack_requests.command_body(f"clevertap {CLEVERTAP} wrong segment", app.slack.response_url(),
                                    user=alice, channel=CHANNEL, kind=kind),
        "application/x-www-form-urlencoded",
    )
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    click = await app.interactive(
        slack_requests.block_actions_payload(request_id, app.slack.response_url(), user=alice, channel=CHANNEL,
                                             kind=kind)
    )
    assert click.status_code == 200 and click.text == ""
    posts = await app.slack.wait_for_outcomes(2)
    assert {p.body["channel"] for p in posts} == {CHANNEL, INCIDENT}
    assert all("stopped" in message_text(p.body).lower() for p in posts)
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.requester.id == alice and stored.outcome is not None
    assert len(app.sandbox["clevertap"].calls_to("/1/targets/stop.json", "POST")) == 1


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
async def test_cancel_check_again_and_the_home_tab_in_every_workspace_kind(app: AppUnderTest, kind: str) -> None:
    alice = slack_corpus.default_user(kind)

    def click(action: str, request_id: str, surface: str | None = None) -> dict[str, Any]:
        return slack_requests.block_actions_payload(
            request_id, app.slack.response_url(), user=alice, channel=CHANNEL, action_id=action, kind=kind,
            surface=surface,
        )

    cancelled = await pending_request(app, alice)
    assert (await app.interactive(click(CANCEL_ACTION, cancelled))).status_code == 200
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(cancelled)
    assert stored is not None and stored.state is RequestState.CANCELLED

    from_home = await pending_request(app, alice)
    assert (await app.interactive(click(STOP_ACTION, from_home, "block_actions.stop.home"))).status_code == 200
    await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    stopped = await app.runtime.store.get(from_home)
    assert stopped is not None and stopped.state is RequestState.DONE

    # Check again on a final outcome is answered (the clicker is told there is nothing to check).
    answer = await app.interactive(click(CHECK_AGAIN_ACTION, from_home))
    assert answer.status_code == 200
    await app.runtime.tasks.wait_idle()
    assert "nothing to check again" in message_text(app.slack.of("response_url")[-1].body)


async def test_an_unsigned_ssl_check_is_answered_and_nothing_else_passes_unsigned(app: AppUnderTest) -> None:
    fixture = slack_corpus.load("ssl_check", "standard")
    body, content_type = slack_corpus.body(fixture)
    probe = await app.http.post(f"{app.url}/slack/events", content=body, headers={"Content-Type": content_type})
    assert probe.status_code == 200 and probe.text == ""
    command = slack_requests.command_body(f"clevertap {CLEVERTAP} x", app.slack.response_url(), user="U0A", channel="C")
    unsigned = await app.http.post(
        f"{app.url}/slack/events", content=command + b"&ssl_check=1", headers={"Content-Type": content_type}
    )
    assert unsigned.status_code == 401
    assert await app.runtime.store.history(limit=5) == []


async def test_a_payload_that_lacks_what_its_listener_needs_is_refused_with_one_log_line(
    app: AppUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    request_id = await pending_request(app, "U0ALICE")
    payload = slack_requests.block_actions_payload(request_id, app.slack.response_url(), user="U0ALICE",
                                                   channel=CHANNEL)
    del payload["user"]
    answer = await app.interactive(payload)
    assert answer.status_code == 400 and answer.text == "malformed payload: user is missing"
    refusals = [r for r in caplog.records if "refused a Slack" in r.getMessage()]
    assert [r.getMessage() for r in refusals] == ["refused a Slack Stop click payload: user is missing"]
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.PENDING


# ----- the Home tab: acked first, published after, once per event ---------------------------------


async def test_the_home_tab_event_is_acked_before_slack_answers_views_publish(start_app: StartApp) -> None:
    app = await start_app()
    app.slack.fail("views.publish", Failure(kind="hang"))
    body = slack_requests.home_opened_body("U0ALICE", "Ev0SLOW")
    async with httpx.AsyncClient(timeout=3) as slack:  # Slack gives an event 3 s
        answer = await slack.post(f"{app.url}/slack/events", content=body,
                                  headers={"Content-Type": "application/json", **sign(body)})
    assert answer.status_code == 200  # answered while views.publish still hangs
    await app.slack.wait_for("views.publish", 1)
    app.slack.release()
    await app.runtime.tasks.wait_idle()


async def test_a_redelivered_event_is_not_acted_on_twice(app: AppUnderTest) -> None:
    body = slack_requests.home_opened_body("U0ALICE", "Ev0TWICE")
    first = await app.post_signed(body, "application/json")
    again = await app.http.post(
        f"{app.url}/slack/events", content=body,
        headers={"Content-Type": "application/json", "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout",
                 **sign(body)},
    )
    assert first.status_code == again.status_code == 200
    await app.runtime.tasks.wait_idle()
    assert len(app.slack.of("views.publish")) == 1
    messages_tab = await app.post_signed(slack_requests.home_opened_body("U0ALICE", "Ev0MSGS", tab="messages"),
                                         "application/json")
    assert messages_tab.status_code == 200
    await app.runtime.tasks.wait_idle()
    assert len(app.slack.of("views.publish")) == 1  # the Messages tab has nothing to publish


# ----- the form without response URLs ----------------------------------------------------------------


@pytest.mark.parametrize("urls", ["empty", "none"])
async def test_a_form_without_response_urls_still_brings_the_card(app: AppUnderTest, urls: str) -> None:
    submission = slack_requests.form_submission(
        user="U0ALICE", channel=CHANNEL, response_url=app.slack.response_url(), target="clevertap:default",
        campaign_id=CLEVERTAP, reason="connect channel", urls=urls,
    )
    assert submission["view"]["callback_id"] == FORM_CALLBACK
    answer = await app.interactive(submission)
    assert answer.json() == {"response_action": "clear"}
    cards = await app.slack.wait_for("chat.postEphemeral", 1)
    card = cards[-1].body
    assert card["channel"] == CHANNEL and card["user"] == "U0ALICE"
    request_id = buttons(card)[STOP_ACTION]["value"]
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.PENDING and stored.response_url is None
    # The card's own buttons work: Slack gives the click a response_url.
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(2)


async def test_a_form_card_goes_by_dm_when_the_channel_refuses_the_app(app: AppUnderTest) -> None:
    app.slack.refuse_channel(PRIVATE, "channel_not_found")
    submission = slack_requests.form_submission(
        user="U0ALICE", channel=PRIVATE, response_url="", target="clevertap:default", campaign_id=CLEVERTAP,
        urls="none",
    )
    assert (await app.interactive(submission)).json() == {"response_action": "clear"}
    dms = await app.slack.wait_for("chat.postMessage", 1)
    assert dms[-1].body["channel"] == "U0ALICE"
    assert STOP_ACTION in buttons(dms[-1].body) and "Invite @stopcampaign" in message_text(dms[-1].body)
    assert [c.body["channel"] for c in app.slack.of("chat.postEphemeral")] == [PRIVATE]  # tried there first


# ----- conversations that do not take the app's posts ----------------------------------------------


@pytest.mark.parametrize(("conversation", "error"), [(PRIVATE, "channel_not_found"), (DM, "channel_not_found"),
                                                     (PRIVATE, "not_in_channel"), (CHANNEL, "is_archived")])
async def test_the_outcome_reaches_a_conversation_the_app_cannot_post_in(
    app: AppUnderTest, conversation: str, error: str
) -> None:
    app.slack.refuse_channel(conversation, error)
    ack = await app.command(f"clevertap {CLEVERTAP} wrong segment", channel=conversation)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    click_url = app.slack.response_url()
    await app.click(STOP_ACTION, request_id, response_url=click_url, channel=conversation)
    incident = await app.slack.wait_for_outcomes(1)
    assert [p.body["channel"] for p in incident] == [INCIDENT]
    await app.runtime.tasks.wait_idle()
    through_link = [c.body for c in app.slack.of("response_url") if c.body.get("response_type") == "in_channel"]
    assert len(through_link) == 1, [c.body for c in app.slack.of("response_url")]
    assert app.slack.of("response_url")[-1].path == httpx.URL(click_url).path  # the click's own link
    outcome = message_text(through_link[0])
    assert "stopped" in outcome.lower() and "/invite @stopcampaign" in outcome and error in outcome
    card = app.slack.of("response_url")[-1].body  # the requester's card, replaced by the outcome
    assert card.get("replace_original") is True
    assert "could not post in" in message_text(card) and "reply link" in message_text(card)
    assert await app.runtime.store.outbox_depth() == 0
    assert len(app.sandbox["clevertap"].calls_to("/1/targets/stop.json", "POST")) == 1


async def test_without_a_usable_reply_link_the_card_says_the_channel_did_not_get_it(app: AppUnderTest) -> None:
    app.slack.refuse_channel(PRIVATE, "not_in_channel")
    ack = await app.command(f"clevertap {CLEVERTAP} wrong segment", channel=PRIVATE)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    app.slack.fail("response_url", Failure(kind="http", status=404), times=10)  # the link expired
    await app.click(STOP_ACTION, request_id, channel=PRIVATE)
    await app.slack.wait_for_outcomes(1)
    await app.runtime.tasks.wait_idle()
    problems = await app.runtime.service.announce_problems(request_id)
    assert [(p.target, p.state) for p in problems] == [("channel", "failed")]
    assert "no reply link is left" in problems[0].error


async def test_an_incident_channel_that_refuses_posts_is_reported_everywhere(
    app: AppUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    app.slack.refuse_channel(INCIDENT, "not_in_channel")
    ack = await app.command(f"clevertap {CLEVERTAP} wrong segment")
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(1)
    await app.runtime.tasks.wait_idle()
    card = message_text(app.slack.of("response_url")[-1].body)
    assert f"<#{INCIDENT}> did not accept the post (not_in_channel): invite @stopcampaign" in card
    health = (await app.http.get(f"{app.url}/healthz")).json()
    assert health["status"] == "degraded" and health["degraded"] == ["incident_channel"]
    reason = health["reasons"]["incident_channel"]
    assert "not_in_channel" in reason and INCIDENT in reason
    warnings = [r for r in caplog.records if "did not accept the app's posts" in r.getMessage()]
    assert len(warnings) == 1
    await app.post_signed(slack_requests.home_opened_body("U0ALICE", "Ev0HOMEWARN"), "application/json")
    published = await app.slack.wait_for("views.publish", 1)
    assert "did not accept the app's posts" in message_text(published[-1].body)
    # Once the app is invited and a post goes through, the problem is gone.
    app.slack.accept_channel(INCIDENT)
    second = buttons((await app.command(f"clevertap {CLEVERTAP} again")).json())[STOP_ACTION]["value"]
    await app.click(STOP_ACTION, second)
    await app.slack.wait_for_outcomes(3)
    assert (await app.http.get(f"{app.url}/healthz")).json() == {"status": "ok"}


@pytest.mark.parametrize(("info", "error"), [({"is_private": True, "is_member": False}, "not_in_channel"),
                                             ({"is_archived": True}, "is_archived"), (None, "channel_not_found")])
async def test_the_incident_channel_is_checked_at_start(
    start_app: StartApp, info: dict[str, Any] | None, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = await start_app(INCIDENT_CHANNEL="C0CHECKED")
    assert app.slack.of("conversations.info")[-1].body["channel"] == "C0CHECKED"
    assert (await app.http.get(f"{app.url}/healthz")).json()["status"] == "ok"  # a member of a public channel
    if info is None:
        app.slack.refuse_channel("C0REFUSING", "channel_not_found")
    else:
        app.slack.channels["C0REFUSING"] = info
    refused = await start_app(INCIDENT_CHANNEL="C0REFUSING")
    health = (await refused.http.get(f"{refused.url}/healthz")).json()
    assert health["status"] == "degraded" and error in health["reasons"]["incident_channel"]
    assert sum("C0REFUSING did not accept" in r.getMessage() for r in caplog.records) == 1


# ----- a token Slack refuses ---------------------------------------------------------------------


async def test_a_refused_token_keeps_the_outcomes_owed_until_slack_takes_it_again(
    app: AppUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    ack = await app.command(f"clevertap {CLEVERTAP} wrong segment")
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    app.slack.token_error = "token_revoked"
    await app.click(STOP_ACTION, request_id)
    await app.sandbox["clevertap"].wait_for_calls(1, "/1/targets/stop.json")
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None and stored.outcome.status.value == "stopped"
    assert await app.runtime.store.outbox_depth() == 2  # owed, not given up
    health = (await app.http.get(f"{app.url}/healthz")).json()
    assert health["status"] == "degraded" and "token_revoked" in health["reasons"]["slack_token"]
    await app.runtime.wait_for_delivery_pass()
    token_lines = [r for r in caplog.records if "Slack refuses the bot token" in r.getMessage()]
    assert len(token_lines) == 1
    card = message_text(app.slack.of("response_url")[-1].body)  # the card needs no token
    assert "stopped" in card.lower() and "token_revoked" in card
    app.slack.token_error = None
    posts = await app.slack.wait_for_outcomes(2, timeout=30)
    assert {p.body["channel"] for p in posts} == {CHANNEL, INCIDENT}
    await app.runtime.wait_for_delivery_pass()
    assert await app.runtime.store.outbox_depth() == 0
    assert (await app.http.get(f"{app.url}/healthz")).json() == {"status": "ok"}


# ----- approvals across conversations --------------------------------------------------------------


async def test_approve_from_the_dm_and_decline_on_the_channel_card_use_slacks_shapes(start_app: StartApp,
                                                                                 tmp_path: Any) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy.providers.clevertap]\ntwo_person = true\n")
    app = await start_app(STOPCAMPAIGN_CONFIG=str(policy))
    ack = await app.command(f"clevertap {CLEVERTAP} wrong segment")
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    assert DECLINE_ACTION in buttons(ack.json())
    approve = slack_requests.block_actions_payload(request_id, app.slack.response_url(), user="U0BOB", channel=DM,
                                                   surface="block_actions.approve.dm")
    assert (await app.interactive(approve)).status_code == 200
    posts = await app.slack.wait_for_outcomes(2)
    assert all("stopped" in message_text(p.body).lower() for p in posts)
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.confirmed_by is not None and stored.confirmed_by.id == "U0BOB"
    assert stored.response_url != approve["response_url"]  # a DM's link does not post in the channel


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
async def test_each_channel_keeps_one_record_whatever_429s_and_errors_slack_answers(
    app: AppUnderTest, kind: str
) -> None:
    alice = slack_corpus.default_user(kind)
    app.sandbox["clevertap"].add_fault(Fault(kind=FaultKind.LATENCY, delay=0.2, match="/targets/stop"))
    app.slack.fail("chat.postMessage", Failure(kind="ratelimit", retry_after=0), times=2)
    app.slack.fail("chat.update", Failure(kind="ratelimit", retry_after=0))
    app.slack.fail("chat.update", Failure(kind="http", status=500))
    ack = await app.post_signed(
        slack_requests.command_body(f"clevertap {CLEVERTAP} wrong segment", app.slack.response_url(), user=alice,
                                    channel=CHANNEL, kind=kind),
        "application/x-www-form-urlencoded",
    )
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.interactive(slack_requests.block_actions_payload(request_id, app.slack.response_url(), user=alice,
                                                               channel=CHANNEL, kind=kind))
    await app.slack.wait_for_outcomes(2, timeout=30)
    await app.runtime.wait_for_delivery_pass()
    messages = app.slack.messages()
    assert sorted(m.body["channel"] for m in messages) == sorted([CHANNEL, INCIDENT])  # one record each
    assert all("stopped" in message_text(m.body).lower() for m in messages)
    assert await app.runtime.store.outbox_depth() == 0
