"""Policy, two-person approval, history and crash recovery over real HTTP with several users."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from bot.core.models import RequestState, utcnow
from bot.slack.blocks import CANCEL_ACTION, DECLINE_ACTION, STOP_ACTION
from bot.store.schema import audit_log, stop_requests
from tests import slack_requests
from tests.e2e.conftest import CHANNEL, INCIDENT, AppUnderTest, StartApp, buttons, message_text
from tests.fakes.slack import dm_of

ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
SONARLY_RUNNING = "65f1a0c0e4b0a1b2c3d4e501"

POLICY = f"""
[policy]
requesters = ["S0ONCALL", "{CAROL}"]
channels = ["{CHANNEL}"]

[policy.providers.sonarly]
two_person = true
confirmers = ["S0LEADS"]
"""


async def policy_app(start_app: StartApp, tmp_path: Path, **env: str) -> AppUnderTest:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    app = await start_app(STOPCAMPAIGN_CONFIG=str(path), **env)
    app.slack.groups.update({"S0ONCALL": [ALICE, BOB], "S0LEADS": [BOB]})
    return app


def notices(app: AppUnderTest) -> list[dict[str, Any]]:
    """Ephemeral notices sent through response URLs (not card updates)."""
    return [c.body for c in app.slack.of("response_url") if c.body.get("replace_original") is False]


async def refusals_without_request(app: AppUnderTest) -> list[str]:
    async with app.runtime.store.engine.connect() as conn:
        rows = (await conn.execute(select(audit_log).where(audit_log.c.request_id.is_(None)))).all()
    return [row.detail_json for row in rows]


async def test_requests_outside_the_policy_are_refused_and_audited(start_app: StartApp, tmp_path: Path) -> None:
    app = await policy_app(start_app, tmp_path)
    outsider = await app.command("clevertap 1457432766", user=DAVE)
    assert outsider.json()["response_type"] == "ephemeral"
    assert "Not allowed" in message_text(outsider.json()) and "S0ONCALL" in message_text(outsider.json())
    elsewhere = await app.command("clevertap 1457432766", user=ALICE, channel="C0RANDOM")
    assert f"<#{CHANNEL}>" in message_text(elsewhere.json())
    assert STOP_ACTION not in buttons(outsider.json()) and STOP_ACTION not in buttons(elsewhere.json())
    details = await refusals_without_request(app)
    assert len(details) == 2
    assert '"rule": "requesters"' in details[0] and '"rule": "channels"' in details[1]
    assert len(app.slack.of("usergroups.users.list")) >= 1  # the group was resolved through Slack
    # A user named directly and a group member may ask.
    for user in (CAROL, BOB):
        allowed = await app.command("clevertap 1457432766", user=user)
        assert STOP_ACTION in buttons(allowed.json())


async def test_two_person_rule(start_app: StartApp, tmp_path: Path) -> None:
    app = await policy_app(start_app, tmp_path)
    ack = await app.command(f"sonarly {SONARLY_RUNNING} wrong list", user=ALICE)
    card = ack.json()
    assert card["response_type"] == "in_channel"  # the approvers see it
    text = message_text(card)
    assert "Approval needed" in text and "<!subteam^S0LEADS>" in text and "Approve and stop" in text
    request_id = buttons(card)[STOP_ACTION]["value"]
    simulator = app.sandbox["sonarly"]

    for user, rule_text in ((ALICE, "a different person must approve"), (CAROL, "Only <!subteam^S0LEADS>")):
        await app.click(STOP_ACTION, request_id, user=user)
        await app.runtime.tasks.wait_idle()
        notice = notices(app)[-1]  # the preview may land in between: look at notices only
        assert notice["response_type"] == "ephemeral" and rule_text in message_text(notice)
    await app.click(CANCEL_ACTION, request_id, user=BOB)
    await app.runtime.tasks.wait_idle()
    assert "Only" in message_text(notices(app)[-1])
    assert simulator.calls_to("/stop", "POST") == []

    await app.click(STOP_ACTION, request_id, user=BOB)
    calls = await app.slack.wait_for_outcomes(3)  # the approval card by DM, then the outcome twice
    posts = [p for p in calls if p.body["channel"] != dm_of(BOB)]
    # The records were posted at the request ("waiting for approval") and updated in place since.
    assert all(p.method == "chat.update" for p in posts)
    assert len([m for m in app.slack.messages() if m.body["channel"] != dm_of(BOB)]) == 2
    # The approver's DM card is updated in place too: no live button stays once the request ended.
    await app.runtime.wait_for_delivery_pass()
    dm = [m for m in app.slack.messages() if m.body["channel"] == dm_of(BOB)]
    assert len(dm) == 1 and dm[0].method == "chat.update" and STOP_ACTION not in buttons(dm[0].body)
    await app.runtime.tasks.wait_idle()
    assert len(simulator.calls_to("/stop", "POST")) == 1
    assert f"<@{BOB}>" in message_text(posts[0].body) and f"<@{ALICE}>" in message_text(posts[0].body)
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.two_person and stored.confirmed_by is not None
    assert stored.confirmed_by.id == BOB
    trail = await app.runtime.store.audit(request_id)
    refused = [(e.actor, e.detail["rule"]) for e in trail if e.event == "refused"]
    assert refused == [(ALICE, "self_approval"), (CAROL, "confirmers"), (BOB, "requester_only")]


async def test_the_requester_can_cancel_a_two_person_request(start_app: StartApp, tmp_path: Path) -> None:
    app = await policy_app(start_app, tmp_path)
    request_id = buttons((await app.command(f"sonarly {SONARLY_RUNNING}", user=ALICE)).json())[STOP_ACTION]["value"]
    await app.click(CANCEL_ACTION, request_id, user=ALICE)
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.CANCELLED
    await app.click(STOP_ACTION, request_id, user=BOB)
    await app.runtime.tasks.wait_idle()
    assert "cancelled by" in message_text(app.slack.of("response_url")[-1].body)
    assert app.sandbox["sonarly"].calls_to("/stop", "POST") == []


async def test_history_and_status_from_slack(app: AppUnderTest) -> None:
    first = buttons((await app.command("clevertap 1457432766 wrong segment")).json())[STOP_ACTION]["value"]
    await app.click(STOP_ACTION, first)
    await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    second = buttons((await app.command("altcraft 101", user=ALICE)).json())[STOP_ACTION]["value"]

    history = message_text((await app.command("history")).json())
    assert first in history and second in history and "stopped" in history and "pending" in history
    assert history.index(second) < history.index(first)  # newest first
    only_ct = message_text((await app.command("history ct 5")).json())
    assert first in only_ct and second not in only_ct
    trail = message_text((await app.command(f"status {first}")).json())
    for event in ("created", "confirmed", "outcome", "wrong segment"):
        assert event in trail
    assert "No request" in message_text((await app.command("status nope")).json())
    assert "count must be" in message_text((await app.command("history 0")).json())


async def test_a_request_stuck_in_executing_is_settled_on_start(start_app: StartApp) -> None:
    app = await start_app()
    stuck = {}
    for provider, campaign in (("sonarly", SONARLY_RUNNING), ("clevertap", "1457432766")):
        stuck[provider] = buttons((await app.command(f"{provider} {campaign}")).json())[STOP_ACTION]["value"]
    for request_id in stuck.values():
        assert await app.runtime.service.saved(request_id)
    app.sandbox["sonarly"].campaigns[SONARLY_RUNNING].state = "stopped"  # the lost stop did arrive
    async with app.runtime.store.engine.begin() as conn:  # as if the process died mid-stop
        await conn.execute(
            update(stop_requests)
            .where(stop_requests.c.id.in_(list(stuck.values())))
            .values(state="executing", updated_at=utcnow() - timedelta(minutes=10), confirmed_at=utcnow())
        )
    for request_id in stuck.values():  # the dead process had got its stop out, and heard nothing back
        await app.runtime.store.attempt_sending(request_id, 1)
    await start_app()  # a new process on the same database settles them at start
    posts = await app.slack.wait_for_outcomes(4)
    texts = " ".join(message_text(p.body) for p in posts)
    assert "restarted while this stop was running" in texts
    sonarly = await app.runtime.store.get(stuck["sonarly"])
    clevertap = await app.runtime.store.get(stuck["clevertap"])
    assert sonarly is not None and sonarly.outcome is not None
    assert sonarly.outcome.status.value == "stopped" and sonarly.outcome.verified
    assert clevertap is not None and clevertap.outcome is not None
    # CleverTap's stop is repeat-safe: the engine simply sends it again and gets a real answer.
    assert clevertap.outcome.status.value == "stopped"
    assert len(app.sandbox["clevertap"].calls_to("/stop", "POST")) == 1
    assert app.sandbox["sonarly"].calls_to("/stop", "POST") == []  # nothing was sent again


async def test_group_members_survive_a_restart_during_a_slack_outage(start_app: StartApp, tmp_path: Path) -> None:
    """The members Slack last gave are kept in the store: a new process with a cold cache, Slack
    down, still lets the on-call group stop; past GROUP_MEMBERS_MAX_AGE_SECONDS the refusal says
    membership is unknown."""
    before = await policy_app(start_app, tmp_path)
    assert STOP_ACTION in buttons((await before.command("clevertap 1457432766", user=ALICE)).json())
    before.slack.down = True
    restarted = await policy_app(start_app, tmp_path)  # same database, nothing cached in memory
    calls = len(restarted.slack.of("usergroups.users.list"))
    allowed = await restarted.command("clevertap 1457432766", user=ALICE)
    assert STOP_ACTION in buttons(allowed.json()), message_text(allowed.json())
    assert len(restarted.slack.of("usergroups.users.list")) > calls  # Slack was asked first, and failed
    outsider = await restarted.command("clevertap 1457432766", user=DAVE)
    assert "Not allowed" in message_text(outsider.json())

    too_old = await policy_app(start_app, tmp_path, GROUP_MEMBERS_MAX_AGE_SECONDS="0")
    refused = await too_old.command("clevertap 1457432766", user=ALICE)
    text = message_text(refused.json())
    assert STOP_ACTION not in buttons(refused.json())
    assert "Membership of <!subteam^S0ONCALL> is unknown" in text and "h old" in text, text


async def test_history_and_status_follow_the_policy(start_app: StartApp, tmp_path: Path) -> None:
    """A user outside requesters, confirmers and viewers, asking in a DM, reads nothing: not the
    history, not a request's trail; someone the policy names as a viewer reads both."""
    app = await policy_app(start_app, tmp_path)
    ack = await app.command("clevertap 1457432766 secret reason", user=ALICE)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()
    mine = message_text((await app.command("history", user=ALICE)).json())
    assert request_id in mine

    outsider_history = message_text((await app.command("history", user=DAVE, channel="D0DAVE")).json())
    assert request_id not in outsider_history and "secret reason" not in outsider_history
    assert "No stop requests yet" in outsider_history
    outsider_status = message_text((await app.command(f"status {request_id}", user=DAVE, channel="D0DAVE")).json())
    assert "Not allowed" in outsider_status and "secret reason" not in outsider_status

    (tmp_path / "policy.toml").write_text(POLICY.replace("[policy]\n", f'[policy]\nviewers = ["{DAVE}"]\n'))
    viewing = await start_app(STOPCAMPAIGN_CONFIG=str(tmp_path / "policy.toml"))
    viewing.slack.groups.update({"S0ONCALL": [ALICE, BOB], "S0LEADS": [BOB]})
    assert request_id in message_text((await viewing.command("history", user=DAVE, channel="D0DAVE")).json())
    status = message_text((await viewing.command(f"status {request_id}", user=DAVE, channel="D0DAVE")).json())
    assert "secret reason" in status and "Not allowed" not in status


async def test_approvers_get_the_card_by_dm_and_can_decline_with_a_comment(start_app: StartApp, tmp_path: Path) -> None:
    app = await policy_app(start_app, tmp_path)
    ack = await app.command(f"sonarly {SONARLY_RUNNING} wrong list", user=ALICE)
    card = ack.json()
    request_id = buttons(card)[STOP_ACTION]["value"]
    assert DECLINE_ACTION in buttons(card)
    dms = await app.slack.wait_for_outcomes(1)
    assert dms[0].body["channel"] == dm_of(BOB) and request_id in message_text(dms[0].body)  # S0LEADS = [BOB]
    # The request is public at once: a live record waits for the approval in both channels.
    await app.slack.wait_for("chat.postMessage", 3)
    waiting = [m for m in app.slack.messages() if m.body["channel"] != dm_of(BOB)]
    assert all("Waiting for approval (two-person rule)" in message_text(m.body) for m in waiting)

    await app.click(DECLINE_ACTION, request_id, user=BOB)
    opened = await app.slack.wait_for("views.open", 1)
    assert opened[0].body["trigger_id"]  # the click's, from Slack
    card_url = app.slack.response_url()
    refused = await app.interactive(slack_requests.decline_submission(request_id, card_url, user=CAROL, comment="no"))
    assert refused.json()["response_action"] == "errors" and "S0LEADS" in json.dumps(refused.json())
    declined = await app.interactive(
        slack_requests.decline_submission(request_id, card_url, user=BOB, comment="wrong list, use the EU one")
    )
    assert declined.json() == {"response_action": "clear"}
    await app.runtime.tasks.wait_idle()
    ended = [c.body for c in app.slack.of("response_url") if c.path == httpx.URL(card_url).path]
    assert ended and "Stop declined" in message_text(ended[-1]) and "use the EU one" in message_text(ended[-1])
    assert f"<@{BOB}>" in message_text(ended[-1]) and STOP_ACTION not in buttons(ended[-1])
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.CANCELLED
    assert app.sandbox["sonarly"].calls_to("/stop", "POST") == []
    # The live records said "waiting for approval" from the request on, and now say it was declined.
    await app.runtime.wait_for_delivery_pass()
    records = [m for m in app.slack.messages() if m.body["channel"] != dm_of(BOB)]
    summary = [(c.method, c.body.get("channel"), c.ts) for c in app.slack.calls if c.method.startswith("chat.")]
    assert sorted(m.body["channel"] for m in records) == sorted([CHANNEL, INCIDENT]), summary
    for record in records:
        assert record.method == "chat.update" and "Stop declined" in message_text(record.body)
    dm = [m for m in app.slack.messages() if m.body["channel"] == dm_of(BOB)]  # the approver's own card
    assert len(dm) == 1 and "Stop declined" in message_text(dm[0].body) and not buttons(dm[0].body)
