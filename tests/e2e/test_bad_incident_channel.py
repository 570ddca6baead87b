"""``INCIDENT_CHANNEL`` that is not a channel id, in the modes that post there, as real processes:
one line naming the setting and what is expected, exit code 2, never a traceback (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_bad_config import run


@pytest.mark.parametrize("value", ["not-a-channel", "#incidents"])
@pytest.mark.parametrize("mode", ["serve", "socket"])
def test_an_incident_channel_that_is_not_an_id_stops_the_start_with_exit_2(
    tmp_path: Path, mode: str, value: str
) -> None:
    result = run(tmp_path, mode, {"INCIDENT_CHANNEL": value})
    output = result.stderr + result.stdout
    assert result.returncode == 2, output
    assert "Traceback" not in output
    problem_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert problem_lines == [
        f"configuration problem: INCIDENT_CHANNEL: {value!r} is not a channel id such as C0123456789 "
        "(copy it from the channel's details)"
    ], problem_lines
