"""Every front end announces: stops and approvals made from the CLI are posted in Slack (the
request's channel when it has one, and the incident channel) through the same outbox as Slack's
own, and an approval card approved from the CLI loses its buttons.

The app runs in-process (it served the Slack command); the CLI runs as a real process on the
same database, with the same Slack and provider configuration.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path

from bot.httpserver import RunningServer
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import BOT_TOKEN, CHANNEL, INCIDENT, StartApp, buttons, message_text, provider_env
from tests.e2e.processes import clean_environment
from tests.e2e.test_policy_flows import ALICE, BOB, POLICY, SONARLY_RUNNING, policy_app
from tests.fakes.slack import FakeSlack, dm_of

CONSOLE = f"console:{getpass.getuser()}"

ROOT = Path(__file__).resolve().parents[2]


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=str(ROOT), env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


def cli_environment(tmp_path: Path, slack_url: str, box: Sandbox, box_url: str) -> dict[str, str]:
    return clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_API_URL=f"{slack_url}/api/",
        DATABASE_URL=f"sqlite:///{tmp_path / 'e2e.db'}",  # the in-process app's database
        INCIDENT_CHANNEL=INCIDENT,
        STOPCAMPAIGN_CONFIG=str(tmp_path / "policy.toml"),
        **provider_env(box, box_url),
    )


async def test_an_approval_from_the_cli_is_announced_and_ends_the_card(
    start_app: StartApp, tmp_path: Path, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, box_server = sandbox
    # The approver at the shell is named in the policy as console:<OS user>.
    policy = POLICY.replace('confirmers = ["S0LEADS"]', f'confirmers = ["S0LEADS", "{CONSOLE}"]')
    (tmp_path / "policy.toml").write_text(policy)
    app = await start_app(STOPCAMPAIGN_CONFIG=str(tmp_path / "policy.toml"))
    app.slack.groups.update({"S0ONCALL": [ALICE, BOB], "S0LEADS": [BOB]})
    ack = await app.command(f"sonarly {SONARLY_RUNNING} wrong list", user=ALICE)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()
    card_updates = len(app.slack.of("response_url"))

    env = cli_environment(tmp_path, app.slack.url, box, box_server.url)
    code, output = await run_cli(env, "approve", request_id, "--yes")
    assert code == 0, output
    assert "stopped" in output and "Traceback" not in output

    posts = [p for p in app.slack.outcomes() if request_id in message_text(p.body)]
    dm = [p for p in posts if p.body["channel"] == dm_of(BOB)]  # BOB (S0LEADS) got the approval card by DM…
    assert len(dm) == 1 and STOP_ACTION not in buttons(dm[0].body)  # …updated with the outcome, buttons gone
    posts = [p for p in posts if p.body["channel"] != dm_of(BOB)]
    assert sorted(p.body["channel"] for p in posts) == sorted([CHANNEL, INCIDENT])
    assert CONSOLE in message_text(posts[0].body) and f"<@{ALICE}>" in message_text(posts[0].body)
    assert await app.runtime.store.outbox_depth() == 0  # posted by the CLI, nothing left for serve
    ended = [c.body for c in app.slack.of("response_url")[card_updates:] if c.body.get("replace_original")]
    assert ended, "the approval card was not updated"
    assert STOP_ACTION not in buttons(ended[-1]) and "stopped" in message_text(ended[-1])
    assert len(box["sonarly"].calls_to("/stop", "POST")) == 1


async def test_a_cli_stop_is_announced_in_the_incident_channel(
    start_app: StartApp, tmp_path: Path, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, box_server = sandbox
    app = await policy_app(start_app, tmp_path)
    (tmp_path / "policy.toml").write_text("")  # an open policy: a console user may stop
    env = cli_environment(tmp_path, app.slack.url, box, box_server.url)
    code, output = await run_cli(env, "stop", "clevertap", "1457432766", "--reason", "runbook", "--yes")
    assert code == 0, output
    posts = app.slack.outcomes()
    assert [p.body["channel"] for p in posts] == [INCIDENT]  # a CLI request has no channel of its own
    text = message_text(posts[0].body)
    assert "1457432766" in text and "stopped" in text and "runbook" in text


async def test_a_shell_is_not_a_slack_identity(
    start_app: StartApp, tmp_path: Path, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    """`--as` is gone; a console user the policy does not name never approves a two-person stop,
    even where anyone may approve (the shell could be the requester's own)."""
    box, box_server = sandbox
    (tmp_path / "policy.toml").write_text('[policy.providers.sonarly]\ntwo_person = true\n')
    app = await start_app(STOPCAMPAIGN_CONFIG=str(tmp_path / "policy.toml"))
    ack = await app.command(f"sonarly {SONARLY_RUNNING} wrong list", user=ALICE)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    env = cli_environment(tmp_path, app.slack.url, box, box_server.url)
    code, output = await run_cli(env, "approve", request_id, "--yes", "--as", BOB)
    assert code == 2 and "No such option '--as'" in output
    code, output = await run_cli(env, "approve", request_id, "--yes")
    assert code == 11 and f"names {CONSOLE} among the confirmers" in output, output
    assert box["sonarly"].calls_to("/stop", "POST") == []
    trail = await app.runtime.store.audit(request_id)
    assert [(e.actor, e.detail.get("rule")) for e in trail if e.event == "refused"] == [(CONSOLE, "console_approval")]


async def test_exports_never_carry_response_urls(
    start_app: StartApp, tmp_path: Path, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, box_server = sandbox
    (tmp_path / "policy.toml").write_text("")
    app = await start_app(STOPCAMPAIGN_CONFIG=str(tmp_path / "policy.toml"))
    ack = await app.command("clevertap 1457432766 export me", user=ALICE)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.response_url  # the store keeps it, for the card
    env = cli_environment(tmp_path, app.slack.url, box, box_server.url)
    for args in (("history", "--json"), ("status", request_id, "--json")):
        code, output = await run_cli(env, *args)
        assert code == 0, output
        assert request_id in output and "export me" in output
        assert "response_url" not in output and stored.response_url not in output


async def test_a_sandbox_demo_never_touches_the_configured_store_or_slack(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    production = tmp_path / "production.db"
    env = clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_API_URL=f"{fake_slack.url}/api/",
        INCIDENT_CHANNEL=INCIDENT,
        DATABASE_URL=f"sqlite:///{production}",
    )
    code, output = await run_cli(env, "stop", "clevertap", "1457432766", "--reason", "demo", "--yes", "--sandbox")
    assert code == 0, output
    assert "throwaway store" in output and "nothing is posted to Slack" in output
    assert not production.exists()
    assert fake_slack.calls == []
