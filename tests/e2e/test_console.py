"""The console front end and the one-shot CLI, driven as a person or a runbook would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

ROOT = Path(__file__).resolve().parents[2]


def env(tmp_path: Path) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLEVERTAP_", "SONARLY_", "WWT_", "ALTCRAFT_", "SLACK_"))
    }
    clean.update({"PYTHONUNBUFFERED": "1", "HOME": str(tmp_path)})
    clean.pop("DATABASE_URL", None)
    return clean


def test_shell_demo_stops_a_sandbox_campaign(tmp_path: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bot", "shell", "--sandbox"],
        cwd=str(ROOT),
        env=env(tmp_path),
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect("Campaigns you can stop")
        child.expect("stopcampaign> ")
        child.sendline("clevertap 1457432766 wrong segment")
        child.expect("About to stop a CleverTap campaign")
        child.expect("wrong segment")
        child.expect(r"\[yes/N\]: ")
        child.sendline("yes")
        child.expect("CleverTap campaign 1457432766: stopped")
        child.expect("stopcampaign> ")
        child.sendline("ct 1457432766")
        child.expect(r"\[yes/N\]: ")
        child.sendline("yes")
        child.expect("already stopped")
        child.expect("stopcampaign> ")
        child.sendline("clevertap 1457432767")
        child.expect(r"\[yes/N\]: ")
        child.sendline("n")
        child.expect("Cancelled. Nothing was sent")
        child.expect("stopcampaign> ")
        child.sendline("clevertap nope")
        child.expect("Error: CleverTap campaign ids are")
        child.expect("stopcampaign> ")
        child.sendline("help")
        child.expect("Configured providers")
        child.expect("stopcampaign> ")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env=env(tmp_path),
        text=True,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_one_shot_stop_exit_codes(tmp_path: Path) -> None:
    stopped = run_cli(tmp_path, "stop", "clevertap", "1457432766", "--reason", "runbook", "--yes", "--sandbox")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    missing = run_cli(tmp_path, "stop", "ct", "1999999999", "--yes", "--sandbox")
    assert missing.returncode == 4 and "not found" in missing.stdout
    usage = run_cli(tmp_path, "stop", "clevertap", "abc", "--yes", "--sandbox")
    assert usage.returncode == 2 and "positive whole number" in usage.stderr


def test_one_shot_stop_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "stop", "clevertap", "1457432766", "--sandbox")
    assert result.returncode == 11
    assert "--yes" in result.stderr


def test_bad_configuration_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    bad = env(tmp_path) | {
        "CLEVERTAP_ACCOUNT_ID": "A",
        "CLEVERTAP_REGION": "mars1",
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=bad,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CLEVERTAP_PASSCODE: required" in result.stderr
    assert "CLEVERTAP_REGION: unknown region" in result.stderr
    assert "Traceback" not in result.stderr
    missing_slack = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=env(tmp_path),
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert missing_slack.returncode == 2 and "SLACK_SIGNING_SECRET" in missing_slack.stderr


@pytest.mark.parametrize(
    ("target", "campaign", "already"),
    [
        ("clevertap", "1457432770", "1457432769"),
        ("sonarly", "65f1a0c0e4b0a1b2c3d4e507", "65f1a0c0e4b0a1b2c3d4e504"),
        ("rcs", "53652002", "53651997"),
        ("altcraft", "106", "105"),
    ],
)
def test_one_shot_stop_on_every_provider(tmp_path: Path, target: str, campaign: str, already: str) -> None:
    stopped = run_cli(tmp_path, "stop", target, campaign, "--reason", "runbook", "--yes", "--sandbox")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert f"campaign {campaign}: stopped" in stopped.stdout
    before = run_cli(tmp_path, "stop", target, already, "--yes", "--sandbox")
    assert before.returncode == 0 and "already stopped" in before.stdout, before.stdout


def test_shell_offers_every_provider_with_previews(tmp_path: Path) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "bot", "shell", "--sandbox"], cwd=str(ROOT), env=env(tmp_path),
                          encoding="utf-8", timeout=30)
    try:
        child.expect("stopcampaign> ")
        child.sendline("help")
        for name in ("clevertap", "sonarly", "wwt", "altcraft"):
            child.expect(name)
        child.expect("stopcampaign> ")
        child.sendline("wwt 53651994 wrong segment")
        child.expect("Spring sale RCS")  # the preview, read from the provider
        child.expect(r"\[yes/N\]: ")
        child.sendline("yes")
        child.expect("campaign 53651994: stopped")
        child.expect("stopcampaign> ")
        child.sendline("altcraft 105")
        child.expect("already stopped")  # the preview warns before anything is sent
        child.expect(r"\[yes/N\]: ")
        child.sendline("no")
        child.expect("Cancelled")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_history_and_status_in_the_console(tmp_path: Path) -> None:
    import asyncio
    import json

    from bot.core.models import Actor
    from bot.core.parsing import StopCommand
    from bot.core.ports import NullNotifier
    from bot.core.service import StopService
    from bot.providers.registry import ProviderRegistry
    from bot.store.repository import Store

    url = f"sqlite:///{tmp_path / 'h.db'}"

    async def seed() -> str:
        store = Store.from_url(url)
        await store.initialize()
        service = StopService(store, ProviderRegistry([], {}), NullNotifier())
        request = await service.create_request(StopCommand("clevertap", "default", "1457432766", "why"), Actor(id="U1"))
        await store.close()
        return request.id

    request_id = asyncio.run(seed())
    environment = env(tmp_path) | {"DATABASE_URL": url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=environment, text=True,
                              capture_output=True, timeout=60, check=False)

    listed = cli("history")
    assert listed.returncode == 0 and request_id in listed.stdout and "pending" in listed.stdout
    exported = cli("history", "clevertap", "--json")
    assert json.loads(exported.stdout.splitlines()[0])["id"] == request_id
    assert cli("history", "sonarly").stdout.strip() == "No stop requests yet."
    trail = cli("status", request_id)
    assert trail.returncode == 0 and "created" in trail.stdout and "why" in trail.stdout
    document = json.loads(cli("status", request_id, "--json").stdout)
    assert document["request"]["id"] == request_id and document["audit"][0]["event"] == "created"
    assert cli("status", "nope").returncode == 4
    migrated = cli("migrate")
    assert migrated.returncode == 0 and "revision" in migrated.stdout
