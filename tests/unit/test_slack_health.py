"""What the process knows is wrong with Slack: each problem logged once when it starts and once
when it ends, and response URLs used within Slack's limits (30 minutes, five uses)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.models import utcnow
from bot.httpserver import start_server
from bot.slack.health import SlackHealth
from bot.slack.responder import RESPONSE_URL_USES, ResponseUrlPolicy, post_response
from tests.fakes.slack import FakeSlack


def test_each_problem_is_logged_once_and_cleared_by_a_post_that_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = SlackHealth("C0INCIDENT")
    for _ in range(3):
        health.incident_refused("not_in_channel")
        health.token_refused("invalid_auth")
    assert [p.name for p in health.problems()] == ["incident_channel", "slack_token"]
    assert "<#C0INCIDENT>" in health.problems()[0].message  # a link in Slack…
    assert "The incident channel C0INCIDENT did not accept" in health.problems()[0].plain  # …plain in logs
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 2
    health.slack_accepted()  # any call that went through: the token works
    assert [p.name for p in health.problems()] == ["incident_channel"]
    health.slack_accepted(incident=True)
    assert health.problems() == []
    assert sum("resolved" in r.getMessage() for r in caplog.records) == 2


async def test_a_response_url_is_used_at_most_five_times_and_never_when_expired() -> None:
    slack = FakeSlack()
    server = await start_server(slack.app)
    slack.url = server.url
    try:
        policy = ResponseUrlPolicy.for_api_url(f"{server.url}/api/")
        url = slack.response_url()
        results = [await post_response(url, {"text": "x"}, replace=False, policy=policy)
                   for _ in range(RESPONSE_URL_USES + 2)]
        assert results == [True] * RESPONSE_URL_USES + [False, False]
        assert len(slack.of("response_url")) == RESPONSE_URL_USES
        old = slack.response_url()
        assert not await post_response(old, {"text": "x"}, replace=False, policy=policy,
                                       issued_at=utcnow() - timedelta(minutes=31))
        assert len(slack.of("response_url")) == RESPONSE_URL_USES
    finally:
        await server.stop()
