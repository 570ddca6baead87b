"""What every provider adapter shares: declared facts, HTTP, limits, retries and outcome building.

An adapter is mostly facts (class attributes: names, id format, limits, whether a repeated
stop is safe, what stopping means) plus the mapping of its provider's answers to an
`Outcome`. The base class does the HTTP exchange, the per-account limiter, the bounded
retries and the timing, so an adapter never hand-writes any of that.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from bot.core.models import CampaignInfo, Outcome, OutcomeStatus
from bot.metrics import PROVIDER_LATENCY
from bot.providers.limits import AccountLimiter, LocalLimiter

USER_AGENT = "stopcampaign/0.1 (+https://api.slack.com)"


def _check_base_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port that is not a number
        httpx.URL(value)
    except (ValueError, httpx.InvalidURL):
        raise ValueError("must be an http(s) URL such as https://api.example.com") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError("must be an http(s) URL such as https://api.example.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, a fragment or credentials")
    if not value.isascii() or not value.isprintable():
        raise ValueError("must be printable ASCII (encode international domain names as xn--…)")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
"""An http(s) base URL without query or credentials, stored without a trailing slash."""


class AccountSettings(BaseModel):
    """Base of every provider's account settings: strict, immutable, secrets as SecretStr."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    base_url: BaseUrl | None = None


AccountT = TypeVar("AccountT", bound=AccountSettings)
T = TypeVar("T")


class CampaignIdError(ValueError):
    """The campaign id is not one the provider accepts; the message says what it must look like."""


MAX_ID_DIGITS = 18
"""Longest numeric campaign id accepted: stays inside a signed 64-bit integer."""


def positive_integer_id(raw: str, display_name: str, hint: str) -> str:
    """Validate a numeric campaign id typed by a user; raise `CampaignIdError` saying what is wrong."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text.isascii() or not text.isdigit():
        raise CampaignIdError(f"{display_name} campaign ids are {hint}; got {raw!r}.")
    if len(text.lstrip("0")) > MAX_ID_DIGITS:
        raise CampaignIdError(f"{display_name} campaign id {raw!r} is too long to be a campaign id.")
    value = int(text)
    if value <= 0:
        raise CampaignIdError(f"{display_name} campaign ids are positive; got {raw!r}.")
    return str(value)


class PreviewUnavailable(Exception):
    """The provider cannot describe the campaign right now; the message says why, for the card."""


@dataclass(frozen=True)
class HttpOptions:
    """How adapters talk HTTP: per-attempt timeout, total deadline, attempts, optional transport."""

    timeout: float = 8.0
    deadline: float = 20.0
    max_attempts: int = 4
    preview_timeout: float = 2.0
    backoff: float = 0.2
    """First retry pause in seconds; later ones grow exponentially (with jitter) up to 2 s."""
    limiter_factory: Callable[[str, str, float, int], AccountLimiter] | None = None
    """Builds each account's limiter (shared on Redis when configured); default: per process."""
    transport: httpx.AsyncBaseTransport | None = None


@dataclass
class Reply:
    """One HTTP answer from a provider, with its body parsed as JSON when it is JSON."""

    status: int
    text: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_json(self) -> bool:
        """True when the body parsed as JSON (any JSON type)."""
        return self.json is not None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or an empty dict when it is anything else."""
        return self.json if isinstance(self.json, dict) else {}

    def retry_after(self) -> float | None:
        """Seconds from a Retry-After header in seconds form, when present and sane."""
        raw = self.headers.get("retry-after")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            return None
        return value if 0 <= value <= 3600 else None

    def snippet(self, limit: int = 200) -> str:
        """The start of the body on one line, for outcome details of unparsable answers."""
        flat = " ".join(self.text.split())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class SendError(Exception):
    """An HTTP exchange that produced no answer. `sent` says whether the request may have arrived."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


# Errors raised before any byte of the request can have reached the provider.
_NOT_SENT_ERRORS: tuple[type[httpx.HTTPError], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def describe_http_error(exc: httpx.HTTPError) -> str:
    """A plain sentence for a transport error, without URLs that could carry secrets."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({kind})"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    return f"connection failed ({kind})"


@dataclass
class Attempts:
    """Counts attempts and time for one adapter operation.

    Time spent queued in the account's limiter does not count against the deadline (in a storm
    the queue can be long, and the provider has not been asked anything yet); it still counts
    in `elapsed_ms`, which is what the person waited.
    """

    started: float = field(default_factory=time.monotonic)
    count: int = 0
    queued: float = 0.0

    def __post_init__(self) -> None:
        _current_attempts.set(self)

    @property
    def elapsed_ms(self) -> int:
        """Milliseconds since the operation started."""
        return int((time.monotonic() - self.started) * 1000)

    def remaining(self, deadline: float) -> float:
        """Seconds left before `deadline` seconds of work (queueing excluded) are used up."""
        return deadline - (time.monotonic() - self.started - self.queued)


_current_attempts: ContextVar[Attempts | None] = ContextVar("current_attempts", default=None)


class ProviderAdapter(ABC, Generic[AccountT]):
    """One configured account of one provider. Subclasses declare facts and map answers."""

    name: ClassVar[str]
    """Canonical lowercase name used in commands and config (``clevertap``)."""
    display_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    env_prefix: ClassVar[str]
    """Prefix of the env vars of the default account (``CLEVERTAP_`` → ``CLEVERTAP_PASSCODE``)."""
    env_modifiers: ClassVar[frozenset[str]] = frozenset({"base_url"})
    """Account fields whose env var alone does not make the provider configured (a warning says so)."""
    account_model: ClassVar[type[AccountSettings]]
    docs_url: ClassVar[str]
    campaign_id_hint: ClassVar[str]
    """What a valid campaign id looks like, for error messages and help."""
    repeat_safe: ClassVar[bool]
    """True when sending the same stop twice is harmless, so retries may resend it."""
    stop_meaning: ClassVar[str]
    """What stopping does on this provider, shown on the confirmation card."""
    has_preview: ClassVar[bool] = False
    no_preview_reason: ClassVar[str] = ""
    rate_per_second: ClassVar[float] = 3.0
    max_in_flight: ClassVar[int] = 3

    def __init__(self, account_name: str, account: AccountT, options: HttpOptions | None = None) -> None:
        self.account_name = account_name
        self.account = account
        self.options = options or HttpOptions()
        factory = self.options.limiter_factory
        if factory is None:
            self.limiter: AccountLimiter = LocalLimiter(f"{self.name}:{account_name}", self.rate_per_second,
                                                        self.max_in_flight)
        else:
            self.limiter = factory(self.name, account_name, self.rate_per_second, self.max_in_flight)
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.options.timeout, connect=min(3.0, self.options.timeout)),
            transport=self.options.transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )

    # ----- facts every adapter declares -------------------------------------------------

    @classmethod
    @abstractmethod
    def parse_campaign_id(cls, raw: str) -> str:
        """Validate and normalize a campaign id typed by a user; raise `CampaignIdError`."""

    @property
    @abstractmethod
    def base_url(self) -> str:
        """The API base URL of this account (no trailing slash)."""

    def secret_values(self) -> list[str]:
        """Every secret this adapter holds (the account's SecretStr fields; adapters add tokens)."""
        values = []
        for name in type(self.account).model_fields:
            value = getattr(self.account, name)
            if isinstance(value, SecretStr):
                values.append(value.get_secret_value())
        return [v for v in values if len(v) >= 4]

    def scrub(self, text: str) -> str:
        """`text` with every secret of this adapter replaced, for anything a person or a log sees."""
        for secret in self.secret_values():
            text = text.replace(secret, "<redacted>")
        return text

    def describe_stop(self) -> str:
        """What stopping does for this account, for the confirmation card (default: `stop_meaning`)."""
        return self.stop_meaning

    @property
    def api_host(self) -> str:
        """The host the stop goes to, shown on the confirmation card."""
        parts = urlsplit(self.base_url)
        return parts.netloc or self.base_url

    # ----- the operations ---------------------------------------------------------------

    @abstractmethod
    async def stop(self, campaign_id: str) -> Outcome:
        """Send the stop (exactly once where the provider is not repeat-safe) and say what happened.

        Never raises for provider or network trouble: every failure is an `Outcome`.
        """

    async def preview(self, campaign_id: str) -> CampaignInfo:
        """Describe the campaign before the stop; raise `PreviewUnavailable` when it cannot."""
        raise PreviewUnavailable(self.no_preview_reason or f"{self.display_name} cannot describe a campaign.")

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        """Read the campaign's current state, or None when the provider cannot tell."""
        return None

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    # ----- shared machinery ---------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """One HTTP exchange under the account's limiter. Raises `SendError` when no answer came."""
        request_timeout = httpx.Timeout(
            timeout or self.options.timeout, connect=min(3.0, timeout or self.options.timeout)
        )
        queued_since = time.monotonic()
        async with self.limiter:
            attempts = _current_attempts.get()
            if attempts is not None:
                attempts.queued += time.monotonic() - queued_since
            started = time.monotonic()
            try:
                response = await self._client.request(
                    method, path, json=json_body, headers=headers, timeout=request_timeout
                )
            except _NOT_SENT_ERRORS as exc:
                raise SendError(describe_http_error(exc), sent=False) from None
            except httpx.HTTPError as exc:
                raise SendError(describe_http_error(exc), sent=True) from None
            except (UnicodeError, ValueError) as exc:
                # The request could not even be built (a header that is not ASCII…): nothing left.
                raise SendError(f"the request could not be built ({type(exc).__name__})", sent=False) from None
            finally:
                PROVIDER_LATENCY.labels(self.name, method).observe(time.monotonic() - started)
        return _to_reply(response)

    async def retrying(
        self,
        attempts: Attempts,
        operation: Callable[[], Awaitable[T]],
        *,
        retry_result: Callable[[T], bool],
        retry_error: Callable[[BaseException], bool],
        retry_after: Callable[[T], float | None] = lambda _: None,
    ) -> T:
        """Run `operation` until it gives a result not worth retrying, within attempts and deadline.

        Returns the last result when retries run out; re-raises the last error when the last
        attempt raised. Waits grow exponentially with jitter, or follow the provider's
        Retry-After, and never run past the deadline.
        """
        deadline = self.options.deadline
        backoff = wait_exponential_jitter(multiplier=self.options.backoff, max=2.0, jitter=self.options.backoff)

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            hinted = None
            if outcome is not None and not outcome.failed:
                hinted = retry_after(outcome.result())
            pause = hinted if hinted is not None else backoff(state)
            return max(0.0, min(pause, attempts.remaining(deadline) - 0.05))

        async def attempt() -> T:
            attempts.count += 1
            return await operation()

        retryer = AsyncRetrying(
            retry=retry_if_result(retry_result) | retry_if_exception(retry_error),
            stop=stop_after_attempt(self.options.max_attempts) | stop_before_delay(deadline),
            wait=wait,
            reraise=True,
            retry_error_callback=_last_result,
        )
        result: T = await retryer(attempt)
        return result

    def outcome(
        self,
        status: OutcomeStatus,
        campaign_id: str,
        attempts: Attempts,
        *,
        reply: Reply | None = None,
        **fields: Any,
    ) -> Outcome:
        """Build an `Outcome` with the provider, account, HTTP status, attempts and timing filled in.

        Every text field is scrubbed of the account's secrets: providers echo keys back.
        """
        if reply is not None:
            fields.setdefault("http_status", reply.status)
        for key in ("detail", "provider_message", "provider_status", "provider_code", "trace_id"):
            if isinstance(fields.get(key), str):
                fields[key] = self.scrub(fields[key])
        return Outcome(
            status=status,
            provider=self.name,
            account=self.account_name,
            campaign_id=campaign_id,
            attempts=attempts.count,
            elapsed_ms=attempts.elapsed_ms,
            **fields,
        )


def _last_result(state: RetryCallState) -> Any:
    """Tenacity callback for exhausted retries: hand back the last answer instead of raising."""
    assert state.outcome is not None
    return state.outcome.result()


def _to_reply(response: httpx.Response) -> Reply:
    text = response.text
    parsed: Any = None
    if text.strip():
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            parsed = None
    return Reply(status=response.status_code, text=text, json=parsed, headers=response.headers)


def text_field(data: Mapping[str, Any], key: str) -> str | None:
    """A value from a JSON object as text, or None; tolerates wrong JSON types."""
    value = data.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def int_field(data: Mapping[str, Any], key: str) -> int | None:
    """A value from a JSON object as an int, or None when absent or not a number."""
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**18 else None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value.strip()) <= 19:
        return int(value.strip())
    return None
