"""Which response_urls the app posts to: Slack's hosts, plus SLACK_API_URL's origin when it is not Slack's
(issue 18: a signed payload could name any host). Over real HTTP: tests/e2e/test_response_urls.py."""

from __future__ import annotations

import logging

import pytest

from bot.httpserver import start_server
from bot.slack.responder import SLACK_ONLY, ResponseUrlPolicy, post_response
from tests.fakes.slack import FakeSlack

SLACK_URLS = [
    "https://hooks.slack.com/actions/T0ABCDEF/1234567890/AbCdEfGhIjKlMnOp",
    "https://hooks.slack.com/commands/T0ABCDEF/1234567890/AbCdEfGhIjKlMnOp",
    "https://HOOKS.Slack.COM/actions/T0/1/x",
    "https://hooks.slack.com:443/actions/T0/1/x",
    "https://hooks.dev.slack.com/actions/T0/1/x",
]
ELSEWHERE = [
    "http://hooks.slack.com/actions/T0/1/x",  # not https
    "https://hooks.slack.com:8443/actions/T0/1/x",
    "https://hooks.slack.com.evil.example/actions/T0/1/x",
    "https://evilslack.com/actions/T0/1/x",
    "https://slack.com.evil.example/",
    "https://hooks.slack.com@evil.example/actions/T0/1/x",  # user info: the host is evil.example
    "https://user:pw@hooks.slack.com/actions/T0/1/x",
    "https://hooks.slack.com\\@evil.example/",
    "https://evil.example/?next=https://hooks.slack.com/",
    "https://evil.example/hooks.slack.com",
    "https://hooks.slack.com /x",
    "https://hooks.slack.com\n.evil.example/",
    "https://hookş.slack.com/x",
    "https://hooks.slack.com:abc/x",
    "https://evil.example%2F.slack.com/x",  # an escape in the host: another parser might decode it
    "ftp://hooks.slack.com/x",
    "//hooks.slack.com/x",
    "hooks.slack.com/actions/T0/1/x",
    "not a url",
    "javascript:alert(1)",
    "http://127.0.0.1:8080/response/x",
    "http://localhost:8080/response/x",
]


@pytest.mark.parametrize("url", SLACK_URLS)
def test_slack_hosts_are_allowed(url: str) -> None:
    assert SLACK_ONLY.allows(url)
    assert ResponseUrlPolicy.for_api_url("https://slack.com/api/").allows(url)
    assert ResponseUrlPolicy.for_api_url("http://127.0.0.1:8080/api/").allows(url)  # Slack's hosts stay allowed


@pytest.mark.parametrize("url", ELSEWHERE)
def test_anything_else_is_refused(url: str) -> None:
    assert not SLACK_ONLY.allows(url)
    assert not ResponseUrlPolicy.for_api_url("https://slack.com/api/").allows(url)


def test_the_origin_of_a_self_hosted_api_url_is_allowed_exactly() -> None:
    policy = ResponseUrlPolicy.for_api_url("http://127.0.0.1:8080/api/")
    assert policy.allows("http://127.0.0.1:8080/response/abc")
    assert not policy.allows("http://localhost:8080/response/abc")  # another host name
    assert not policy.allows("http://127.0.0.1:8081/response/abc")  # another port
    assert not policy.allows("https://127.0.0.1:8080/response/abc")  # another scheme
    fake = ResponseUrlPolicy.for_api_url("https://slack.fake.example/api/")
    assert fake.allows("https://slack.fake.example:443/response/abc")
    assert not fake.allows("https://hooks.slack.fake.example/response/abc")
    assert ResponseUrlPolicy.for_api_url("https://slack.com/api/") == SLACK_ONLY


async def test_a_refused_url_is_not_posted_and_the_log_names_its_host_only(caplog: pytest.LogCaptureFixture) -> None:
    recorder = FakeSlack()
    server = await start_server(recorder.app)
    recorder.url = server.url
    try:
        policy = ResponseUrlPolicy.for_api_url(f"{server.url}/api/")
        allowed = recorder.response_url()
        assert await post_response(allowed, {"text": "hi"}, replace=False, policy=policy)
        secret_path = "T0SECRET/123/do-not-log-me"
        refused = f"http://localhost:{server.port}/response/{secret_path}"
        with caplog.at_level(logging.WARNING, logger="bot.slack.responder"):
            assert not await post_response(refused, {"text": "hi"}, replace=False, policy=policy)
        assert [c.path for c in recorder.of("response_url")] == [allowed.removeprefix(server.url)]
        assert [r.getMessage() for r in caplog.records] == [
            "did not post to a response_url at 'localhost': not a Slack host (nor SLACK_API_URL's)"
        ]
        assert secret_path not in caplog.text
    finally:
        await server.stop()
