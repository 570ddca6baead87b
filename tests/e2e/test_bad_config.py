"""Bad configuration in every run mode, as real processes: one clear line naming the setting,
exit code 2, never a traceback. An unreachable Redis is not one of them (the app starts degraded)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import clean_environment, free_port

ROOT = Path(__file__).resolve().parents[2]
SLACK = {
    "SLACK_BOT_TOKEN": "xoxb-config-test-not-real",
    "SLACK_SIGNING_SECRET": "config-test-signing-secret",
    "SLACK_APP_TOKEN": "xapp-config-test-not-real",
}
CLOSED = free_port()

BAD = {
    "redis-port": ({"REDIS_URL": "redis://h:abc"}, "REDIS_URL"),
    "redis-unix": ({"REDIS_URL": "unix:///tmp/redis.sock"}, "REDIS_URL"),
    "database-scheme": ({"DATABASE_URL": "mysql://root@127.0.0.1/test"}, "DATABASE_URL"),
    "database-port": ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:abc/test"}, "DATABASE_URL"),
    "database-refused": ({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{CLOSED}/test"}, "DATABASE_URL"),
    "database-missing": ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/no_such_db_xyz"}, "DATABASE_URL"),
    "database-role": ({"DATABASE_URL": "postgresql://no_such_role_xyz@127.0.0.1:5432/test"}, "DATABASE_URL"),
    "number": ({"STUCK_EXECUTING_SECONDS": "abc"}, "STUCK_EXECUTING_SECONDS"),
    "toml-default": ({"toml": '[providers.clevertap.prod]\ndefault = "yes"\naccount_id = "A"\npasscode = "P"\n'
                      'region = "in1"\n'}, "default"),
    "toml-type": ({"toml": 'request_ttl_seconds = "600"\n'}, "request_ttl_seconds"),
    "toml-syntax": ({"toml": "this is = = not toml\n"}, "config"),
}
MODES = {
    "serve": ["serve", "--port", "0"],
    "socket": ["socket"],
    "migrate": ["migrate"],
    "history": ["history"],
    "stop": ["stop", "clevertap", "1457432766", "--yes"],
}


def run(tmp_path: Path, mode: str, overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = clean_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'config.db'}", **SLACK)
    if "toml" in overrides:
        path = tmp_path / "stopcampaign.toml"
        path.write_text(overrides["toml"])
        env["STOPCAMPAIGN_CONFIG"] = str(path)
    else:
        env.update(overrides)
    return subprocess.run(
        [sys.executable, "-m", "bot", *MODES[mode]], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("mode", list(MODES))
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, mode: str, case: str) -> None:
    overrides, setting = BAD[case]
    result = run(tmp_path, mode, overrides)
    output = result.stderr + result.stdout
    assert result.returncode == 2, output
    assert "Traceback" not in output
    problem_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(problem_lines) == 1, problem_lines
    assert setting in problem_lines[0] or setting.upper() in problem_lines[0], problem_lines


def test_a_password_in_a_bad_database_url_is_never_printed(tmp_path: Path) -> None:
    result = run(tmp_path, "migrate", {"DATABASE_URL": f"postgresql://app:s3cr3t-pw@127.0.0.1:{CLOSED}/test"})
    assert result.returncode == 2
    assert "s3cr3t-pw" not in result.stderr + result.stdout
