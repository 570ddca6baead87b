"""Bad input of every kind against `python -m bot serve`, over real HTTP: nothing unsigned is
parsed, nothing unbounded is buffered, every signed payload shape gets a 2xx/4xx answer, and
the process's log never shows a traceback.

One serve process for the module (no providers configured, Slack's Web API at a closed port),
driven synchronously so that hypothesis can generate the payloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack.blocks import CANCEL_ACTION, STOP_ACTION
from bot.slack.guard import is_ssl_check
from tests import slack_requests
from tests.e2e.processes import clean_environment, free_port

SECRET = "bad-input-signing-secret-0123456789"
MiB = 1024 * 1024


@dataclass
class Door:
    """The serve process under test and everything it logged."""

    url: str
    process: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until the log read so far satisfies `predicate` (lines arrive through a pipe)."""
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "the log never showed it:\n" + self.log[-2000:]

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    workdir = tmp_path_factory.mktemp("door")
    port = free_port()
    env = clean_environment(
        SLACK_BOT_TOKEN="xoxb-bad-input-not-real",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/",  # nobody listens: posts fail fast
        DATABASE_URL=f"sqlite:///{workdir / 'door.db'}",
        PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=workdir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    door = Door(url=f"http://127.0.0.1:{port}", process=process)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            with door.changed:
                door.lines.append(raw.decode(errors="replace"))
                door.changed.notify_all()
            if "Application startup complete" in door.lines[-1]:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "serve did not start:\n" + door.log
        # The start-up check of Slack (a closed port here) logs its warning after its retries: let it
        # come before the tests that count the warnings a request causes.
        door.wait_until(lambda: "could not reach Slack at start" in door.log, timeout=60)
        yield door
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)


def post(door: Door, body: bytes, content_type: str, *, signed: bool = True, **headers: str) -> httpx.Response:
    sent = {"Content-Type": content_type, **(slack_requests.sign(body, SECRET) if signed else {}), **headers}
    return httpx.post(f"{door.url}/slack/events", content=body, headers=sent, timeout=30)


def interactive(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def lines_since(door: Door, start: int) -> list[str]:
    """Warnings and errors logged since `start` (the background loops may log at INFO meanwhile)."""
    return [line for line in door.lines[start:] if '"level": "WARNING"' in line or '"level": "ERROR"' in line]


# ----- 1. the signature comes first, the body is bounded ------------------------------------


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\xff\xfe garbage that is not a form", {}),
        (b"payload=%7Bnot json", {}),
        (b'{"type": "event_callback", "event": null}', {}),
        (b"text=clevertap+1", {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=1"}),
        (b"command=%2Fstopcampaign", {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=00"}),
        (b"command=%2Fstopcampaign", {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "0"}),
        (b"command=%2Fstopcampaign", {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=0"}),
    ],
    ids=["garbage", "bad-json", "json", "timestamp-abc", "stale", "bad-signature", "huge-timestamp"],
)
def test_anything_unsigned_or_badly_signed_is_401_with_one_log_line(
    door: Door, body: bytes, headers: dict[str, str]
) -> None:
    start = len(door.lines)
    answer = post(door, body, "application/x-www-form-urlencoded", signed=False, **headers)
    assert answer.status_code == 401, answer.text
    door.wait_until(lambda: bool(lines_since(door, start)))
    logged = lines_since(door, start)
    assert len(logged) == 1 and "refused a request to /slack/events" in logged[0], logged
    assert "Traceback" not in door.log


def raw_signature(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Slack's signature over the raw bytes, as Slack computes it (``v0:<timestamp>:<body>``), for a body
    that is not UTF-8 (slack_sdk's `SignatureVerifier` decodes the body first, so it cannot sign one)."""
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def fresh_bad_signature() -> dict[str, str]:
    """A current timestamp and a well-formed signature that is wrong: the request reaches the HMAC check."""
    return {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}


def test_badly_signed_bodies_that_are_not_utf8_are_401_with_one_log_line_each(door: Door) -> None:
    """Issue 18: twenty of these gave twenty 500s and 71 KB of tracebacks (the HMAC was computed over the
    body decoded as UTF-8). The signature is checked on the raw bytes, whatever they are."""
    start = len(door.lines)
    for _ in range(20):
        answer = post(door, b"\xff" * 10, "application/x-www-form-urlencoded", signed=False, **fresh_bad_signature())
        assert answer.status_code == 401, answer.text
    door.wait_until(lambda: len(lines_since(door, start)) >= 20)
    logged = lines_since(door, start)
    assert len(logged) == 20, logged
    assert all("refused a request to /slack/events: a bad signature" in line for line in logged), logged
    assert "Traceback" not in door.log


def test_a_signature_that_is_not_ascii_is_401_with_one_log_line(door: Door) -> None:
    """A header of Latin-1 bytes reached a str comparison that raises on non-ASCII (`hmac.compare_digest`)."""
    start = len(door.lines)
    headers = {b"Content-Type": b"application/x-www-form-urlencoded",
               b"X-Slack-Request-Timestamp": str(int(time.time())).encode(), b"X-Slack-Signature": b"v0=\xc3\xa9"}
    answer = httpx.post(f"{door.url}/slack/events", content=b"command=%2Fstopcampaign", headers=headers, timeout=10)
    assert answer.status_code == 401, answer.text
    door.wait_until(lambda: bool(lines_since(door, start)))
    logged = lines_since(door, start)
    assert len(logged) == 1 and "refused a request to /slack/events: a bad signature" in logged[0], logged
    assert "Traceback" not in door.log


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xff" * 10, "unreadable (UnicodeDecodeError)"),
        (b"payload=%7B%7D\xff", "unreadable (UnicodeDecodeError)"),
        (b"\xc3\x28command=%2Fstopcampaign&text=help", "unreadable (UnicodeDecodeError)"),
        (b"payload=%FF%FE", "unreadable (JSONDecodeError)"),  # valid bytes, percent-encoded junk
    ],
    ids=["ff", "payload-then-ff", "bad-sequence-then-command", "percent-encoded"],
)
def test_a_correctly_signed_body_that_is_not_utf8_is_400_with_one_log_line(
    door: Door, body: bytes, problem: str
) -> None:
    start = len(door.lines)
    answer = httpx.post(
        f"{door.url}/slack/events", content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **raw_signature(body)}, timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": f"malformed payload: {problem}"}
    door.wait_until(lambda: bool(lines_since(door, start)))
    logged = lines_since(door, start)
    assert len(logged) == 1 and f"refused a signed Slack payload: {problem}" in logged[0], logged
    assert "Traceback" not in door.log


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(
    prefix=st.binary(max_size=24) | st.sampled_from([b"", b"token=x&", b"\xff&", b"payload=%7B%7D&"]),
    value=st.binary(max_size=6) | st.sampled_from([b"1", b"\xff", b"1\xff", b"%FF", b"1&ssl_check=1"]),
    suffix=st.binary(max_size=24) | st.sampled_from([b"", b"&token=\xff", b"&command=%2Fx", b"\x00"]),
    bad_signature=st.booleans(),
)
def test_junk_bytes_around_ssl_check_never_get_a_5xx(
    door: Door, prefix: bytes, value: bytes, suffix: bytes, bad_signature: bool
) -> None:
    """The unsigned ``ssl_check`` shortcut (bodies under 1 KB naming it) answers 200 to Slack's probe
    alone; any other bytes go on to the signature check and get a 401, never a 5xx."""
    body = prefix + b"ssl_check=" + value + suffix
    headers = fresh_bad_signature() if bad_signature else {}
    answer = post(door, body, "application/x-www-form-urlencoded", signed=False, **headers)
    probe = is_ssl_check(parse_qs(body.decode("ascii", "replace")))
    assert answer.status_code == (200 if probe else 401), (body, answer.status_code, answer.text)
    if probe:
        assert answer.content == b""


def test_a_stale_but_correctly_signed_request_is_401(door: Door) -> None:
    body = slack_requests.command_body("clevertap 1", "https://hooks.invalid/x", user="U0A", channel="C0A")
    old = slack_requests.sign(body, SECRET, timestamp=int(time.time()) - 600)
    answer = httpx.post(
        f"{door.url}/slack/events", content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **old}, timeout=10,
    )
    assert answer.status_code == 401


def test_a_declared_oversized_body_is_413_before_reading(door: Door) -> None:
    answer = httpx.post(
        f"{door.url}/slack/events", content=b"x" * (2 * MiB),
        headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30,
    )
    assert answer.status_code == 413


@pytest.mark.parametrize("signed_headers", [False, True])
def test_a_huge_chunked_body_is_refused_while_reading_with_memory_bounded(door: Door, signed_headers: bool) -> None:
    """Up to 300 MiB without Content-Length: a 413 arrives once the 1 MB cap is passed, while the
    client is still sending, and the process does not grow."""
    before = door.rss_mib()
    port = int(door.url.rsplit(":", 1)[1])
    head = [
        "POST /slack/events HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/x-www-form-urlencoded",
        "Transfer-Encoding: chunked",
    ]
    if signed_headers:  # a plausible signature changes nothing: the cap comes first
        head += [f"X-Slack-Request-Timestamp: {int(time.time())}", "X-Slack-Signature: v0=" + "0" * 64]
    chunk = b"a" * (64 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < 300 * MiB:
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                break
        sock.settimeout(30)
        with contextlib.suppress(ConnectionResetError):
            answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 * MiB, f"the answer came only after {sent // MiB} MiB"
    assert door.rss_mib() - before < 50
    assert door.process.poll() is None


# ----- 2. every signed shape gets an answer ----------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "view_submission", "view": None, "user": {"id": "U0A"}},
        {"type": "block_actions", "actions": None, "user": {"id": "U0A"}},
        {"type": "block_actions", "actions": [{"action_id": STOP_ACTION, "value": None}], "user": None},
        {"type": "block_actions", "actions": [{"action_id": STOP_ACTION, "value": 7}], "user": {"id": "U0A"},
         "channel": None, "team": None, "container": None},
        {"type": "shortcut", "callback_id": None},
        {"type": "message_action", "callback_id": "x", "channel": None, "message": None},
    ],
)
def test_signed_interactive_payloads_with_nulls_are_answered_without_5xx(door: Door, payload: dict[str, Any]) -> None:
    answer = post(door, interactive(payload), "application/x-www-form-urlencoded")
    assert 200 <= answer.status_code < 500, answer.text
    assert "Traceback" not in door.log


@pytest.mark.parametrize(
    "event", [{"type": "event_callback", "event": None}, {"type": "event_callback"}, {"type": None}, [], "text", 3]
)
def test_signed_events_with_nulls_are_answered_without_5xx(door: Door, event: Any) -> None:
    answer = post(door, json.dumps(event).encode(), "application/json")
    assert 200 <= answer.status_code < 500, answer.text
    assert "Traceback" not in door.log


def test_url_verification_is_answered(door: Door) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    answer = post(door, body.encode(), "application/json")
    assert answer.status_code == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in answer.text


# ----- the property: generated payloads of every shape ----------------------------------------

MISSING = object()
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as Slack would send it, or missing, or null, or anything else."""
    return st.one_of(value, st.just(MISSING), st.none(), anything)


def shaped(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({k: maybe(v) for k, v in fields.items()}).map(
        lambda d: {k: v for k, v in d.items() if v is not MISSING}
    )


ids = st.sampled_from(["U0ALICE", "C0CHAN", "T0FAKE", "", "-x", "x" * 300])
user = shaped(id=ids, username=st.text(max_size=8), team_id=ids)
action = shaped(
    action_id=st.sampled_from([STOP_ACTION, CANCEL_ACTION, "other", ""]),
    block_id=st.text(max_size=6),
    value=st.sampled_from(["", "abc", "-rf", "x" * 200]) | st.text(max_size=30),
    type=st.just("button"),
)
interactive_payload = shaped(
    type=st.sampled_from(
        ["block_actions", "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion"]
    ),
    user=user,
    team=shaped(id=ids, domain=st.text(max_size=5)),
    channel=shaped(id=ids, name=st.text(max_size=5)),
    actions=st.lists(action, max_size=2),
    view=shaped(
        id=st.text(max_size=5), callback_id=st.text(max_size=12), private_metadata=st.text(max_size=30),
        state=shaped(values=st.dictionaries(st.text(max_size=5), st.dictionaries(st.text(max_size=5), anything))),
    ),
    callback_id=st.text(max_size=12),
    trigger_id=st.text(max_size=12),
    response_url=st.sampled_from(["https://hooks.invalid/r", "not a url", ""]),
    container=shaped(type=st.text(max_size=6), channel_id=ids, message_ts=st.text(max_size=6)),
)
command_form = shaped(
    command=st.sampled_from(["/stopcampaign", "/other", ""]),
    text=st.text(max_size=60) | st.sampled_from(["clevertap 1457432766 x", "history", "status -abc", "help"]),
    user_id=ids, channel_id=ids, team_id=ids, user_name=st.text(max_size=8),
    response_url=st.sampled_from(["https://hooks.invalid/r", ""]), trigger_id=st.text(max_size=6),
)
event_body = shaped(
    type=st.sampled_from(["event_callback", "url_verification", "app_rate_limited", "ssl_check"]),
    team_id=ids, api_app_id=st.text(max_size=5), challenge=st.text(max_size=10),
    event=shaped(type=st.sampled_from(["app_home_opened", "message", "app_mention", ""]), user=ids, channel=ids,
                 tab=st.sampled_from(["home", "messages"])),
)


def encode(kind: str, value: Any) -> tuple[bytes, str]:
    if kind == "command":
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return urlencode(form).encode(), "application/x-www-form-urlencoded"
    if kind == "interactive":
        return interactive(value), "application/x-www-form-urlencoded"
    return json.dumps(value).encode(), "application/json"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(
    st.one_of(
        command_form.map(lambda v: ("command", v)),
        interactive_payload.map(lambda v: ("interactive", v)),
        event_body.map(lambda v: ("event", v)),
    )
)
def test_generated_signed_payloads_never_get_a_5xx(door: Door, generated: tuple[str, Any]) -> None:
    kind, value = generated
    body, content_type = encode(kind, value)
    answer = post(door, body, content_type)
    assert answer.status_code < 500, (kind, value, answer.status_code, answer.text)


def test_after_all_that_the_log_has_no_traceback_and_the_process_lives(door: Door) -> None:
    assert door.process.poll() is None
    assert "Traceback" not in door.log, door.log[door.log.index("Traceback") - 2000:][:4000]
    assert "Internal Server Error" not in door.log
    assert os.environ.get("NEVER_SET_BY_THIS_TEST") is None
