"""What every provider adapter shares: its declared facts, the generic judge, and the engine's wire.

An adapter *declares* its provider as class attributes (names and aliases, id format, limits,
whether a repeated stop is safe, what stopping means, which reads exist, the HTTP → outcome and
body-code → outcome tables, the status → phase table, a dashboard URL) and writes code only where
its wire format needs it: the stop call, the read call, and reading a body (`stop_body`,
`campaign_of`). This base does the rest: auth, the verdict built from the tables, and the
outcome (scrubbed of secrets, bounded in size); each call goes through the account's
`ProviderChannel` (limiter, timeouts, body cap). The stop itself is `bot.providers.engine`'s,
the same for every provider.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from bot.core.models import (
    Attempt,
    CampaignInfo,
    CampaignPhase,
    Outcome,
    OutcomeStatus,
    ProviderFacts,
    ProviderHealth,
    ProviderKind,
)
from bot.core.ports import AttemptLog, CampaignIdError, PreviewUnavailable
from bot.providers.accounts import AccountSettings, positive_integer_id, token_id
from bot.providers.auth import Auth, StaticHeaders
from bot.providers.budget import Budget
from bot.providers.channel import ProviderChannel
from bot.providers.engine import Rules, run_stop
from bot.providers.limits import AccountLimiter, LimiterFactory
from bot.providers.verdicts import Kind, Read, Reads, Verdict
from bot.providers.wire import AuthRefused, Call, NoAnswer, NotSent, Reply, Sending, clip, status_key

log = logging.getLogger(__name__)

S = OutcomeStatus
# Outcome texts are kept bounded: the audit log and every Slack message carry them.
MAX_DETAIL = 1500
MAX_MESSAGE = 500
MAX_WORD = 200


AccountT = TypeVar("AccountT", bound=AccountSettings)


@dataclass(frozen=True)
class HttpOptions:
    """How adapters talk HTTP: per-call timeout, the stop's deadline, attempts, optional transport."""

    timeout: float = 8.0
    deadline: float = 20.0
    max_attempts: int = 4
    preview_timeout: float = 2.0
    backoff: float = 0.2
    """First pause before sending again; later ones grow exponentially (with jitter) up to 2 s."""
    limiters: Callable[[str, str, float, int], AccountLimiter] | None = None
    """Builds each account's limiter from (provider, account, rate, in flight): a `LimiterFactory`
    (shared on Redis when configured); default: limits kept by this process alone."""
    transport: httpx.AsyncBaseTransport | None = None


@dataclass(frozen=True)
class StopBody:
    """What a stop answer's body says, in the provider's own terms. Every field is optional."""

    success: bool | None = None
    """The body's own verdict; None when it has none that can be read."""
    result: OutcomeStatus | None = None
    """A success body that names its result (``already_stopped``…)."""
    code: str | None = None
    message: str | None = None
    trace_id: str | None = None
    state: str | None = None
    campaign: CampaignInfo | None = None
    note: str = ""
    """A few words about a success (``25 instances stopped``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)


_ALREADY = (S.ALREADY_STOPPED, S.ALREADY_COMPLETED)
_SETTINGS_NOT_SHOWN = frozenset({"base_url", "dashboard_url"})


class ProviderAdapter(ABC, Generic[AccountT]):
    """One configured account of one provider. Subclasses declare facts and read their wire format."""

    # ----- facts every adapter declares ------------------------------------------------------

    name: ClassVar[str]
    """Canonical lowercase name used in commands and config (``clevertap``)."""
    display_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    env_prefix: ClassVar[str]
    """Prefix of the env vars of the default account (``CLEVERTAP_`` → ``CLEVERTAP_PASSCODE``)."""
    env_modifiers: ClassVar[frozenset[str]] = frozenset({"base_url", "dashboard_url"})
    """Account fields whose env var alone does not make the provider configured (a warning says so)."""
    account_model: ClassVar[type[AccountSettings]]
    id_format: ClassVar[Literal["positive_integer", "token"]] = "positive_integer"
    campaign_id_hint: ClassVar[str]
    """What a valid campaign id looks like, for error messages and help."""
    default_base_url: ClassVar[str]
    repeat_safe: ClassVar[bool]
    """True when sending the same stop twice is harmless, so doubt may be settled by sending again."""
    stop_meaning: ClassVar[str]
    """What stopping does on this provider, shown on the confirmation card."""
    undoable: ClassVar[bool] = False
    """True when the provider can undo a stop (the card then does not say "cannot be undone")."""
    reads: ClassVar[Reads] = Reads()
    resend_when_refused_but_active: ClassVar[bool] = False
    """After a refusal by state whose read says "still active": send a second stop (default: no)."""
    no_preview_reason: ClassVar[str] = ""
    rate_per_second: ClassVar[float] = 3.0
    max_in_flight: ClassVar[int] = 3
    http_outcomes: ClassVar[Mapping[int, OutcomeStatus]] = {
        400: S.INVALID_REQUEST,
        401: S.UNAUTHORIZED,
        403: S.FORBIDDEN,
        404: S.NOT_FOUND,
    }
    """HTTP status → outcome for answers that settle the stop by themselves."""
    code_outcomes: ClassVar[Mapping[str, OutcomeStatus]] = {}
    """The provider's own error codes (as text) → outcome; they win over the HTTP status."""
    refused_by_state_http: ClassVar[frozenset[int]] = frozenset({409, 422})
    """HTTP statuses that mean "the campaign's state forbids the stop" (a read tells which state)."""
    outcome_notes: ClassVar[Mapping[OutcomeStatus, str]] = {}
    """A plain sentence per outcome, added to refusals (what to check); ``{campaign_id}``,
    ``{account}`` and the account's non-secret ``{setting}`` placeholders are filled in."""
    phases: ClassVar[Mapping[str, CampaignPhase]] = {}
    """The provider's campaign statuses (lower case, '_' for '-' and ' ') → their meaning."""
    method_fallbacks: ClassVar[Mapping[str, str]] = {}
    """A stop method answered 405 (nothing happened) → the method to use instead, from then on."""
    default_retry_after: ClassVar[float | None] = None
    """Seconds to wait after a 429 without Retry-After (None: the engine's backoff)."""
    dashboard_url_template: ClassVar[str | None] = None
    """The campaign's dashboard page; ``{campaign_id}`` and the account's settings are filled in."""

    def __init__(self, account_name: str, account: AccountT, options: HttpOptions | None = None) -> None:
        self.account_name = account_name
        self.account = account
        self.options = options or HttpOptions()
        limiters = self.options.limiters or LimiterFactory()
        limiter = limiters(self.name, account_name, self.rate_per_second, self.max_in_flight)
        self.channel = ProviderChannel(self.name, self.base_url, limiter, self.options.transport)
        self.auth: Auth = self.make_auth()
        self._methods: dict[str, str] = {}

    @property
    def limiter(self) -> AccountLimiter:
        """The account's request limits (its channel's)."""
        return self.channel.limiter

    @property
    def health(self) -> ProviderHealth:
        """What this process last saw of the provider (its channel's)."""
        return self.channel.health

    def __repr__(self) -> str:
        return f"<{type(self).__name__} account={self.account_name!r} host={self.api_host!r}>"

    # ----- what an adapter writes: its wire format ---------------------------------------------

    @abstractmethod
    def stop_call(self, campaign_id: str) -> Call:
        """The HTTP call that stops one campaign (auth is added by `make_auth`)."""

    @abstractmethod
    def stop_body(self, reply: Reply) -> StopBody:
        """What the body of a stop answer says (its own verdict, code, message, campaign)."""

    def read_call(self, campaign_id: str) -> Call | None:
        """The call that reads one campaign's state, or None when the provider has none."""
        return None

    def preview_call(self, campaign_id: str) -> Call | None:
        """The call that describes a campaign for the card (default: the state read)."""
        return self.read_call(campaign_id)

    def campaign_of(self, reply: Reply, campaign_id: str) -> CampaignInfo | None:
        """The campaign a 2xx read answer carries, or None when it carries none."""
        return None

    def read_problem(self, reply: Reply, campaign_id: str) -> Read:
        """A read answer that carries no campaign, as a failed `Read` (override for body codes)."""
        said = self.said(reply, self.stop_body(reply))
        status = reply.status
        if status == 404:
            return Read(None, f"{self.display_name} does not know campaign {campaign_id} ({said}).", status=S.NOT_FOUND)
        transient = status == 429 or status >= 500
        if reply.ok:
            return Read(None, f"the read's answer holds no campaign ({said})")
        return Read(None, f"the read answered {said}", transient=transient)

    def make_auth(self) -> Auth:
        """How calls are authorized (default: no credentials; adapters override)."""
        return StaticHeaders(dict)

    def code_status(self, code: str | None, message: str | None) -> OutcomeStatus | None:
        """The outcome a body error code (with its message) stands for, or None when unknown."""
        return self.code_outcomes.get(code) if code is not None else None

    def describe_stop(self) -> str:
        """What stopping does for this account, for the confirmation card (default: `stop_meaning`)."""
        return self.stop_meaning

    @property
    def base_url(self) -> str:
        """The account's base URL, else the provider's public API host."""
        return self.account.base_url or self.default_base_url

    # ----- the facts, as the core and the front ends see them ---------------------------------

    @classmethod
    def kind(cls) -> ProviderKind:
        """This provider as the parser and the help know it."""
        return ProviderKind(cls.name, cls.display_name, cls.aliases, cls.campaign_id_hint)

    @classmethod
    def parse_campaign_id(cls, raw: str) -> str:
        """Validate and normalize a campaign id typed by a user; raise `CampaignIdError`."""
        if cls.id_format == "token":
            return token_id(raw, cls.display_name, cls.campaign_id_hint)
        return positive_integer_id(raw, cls.display_name, cls.campaign_id_hint)

    @property
    def has_preview(self) -> bool:
        """True when the provider can describe a campaign before the stop."""
        return self.preview_call("1") is not None

    @property
    def api_host(self) -> str:
        """The host the stop goes to, shown on the confirmation card."""
        parts = urlsplit(self.base_url)
        return parts.netloc or self.base_url

    @property
    def facts(self) -> ProviderFacts:
        """What a card or an outcome may show about this account."""
        return ProviderFacts(
            provider=self.name,
            display_name=self.display_name,
            account=self.account_name,
            api_host=self.api_host,
            stop_meaning=self.describe_stop(),
            has_preview=self.has_preview,
            no_preview_reason=self.no_preview_reason,
            campaign_id_hint=self.campaign_id_hint,
            undoable=self.undoable,
            dashboard_url_template=self._dashboard_template(),
            repeat_safe=self.repeat_safe,
        )

    def _dashboard_template(self) -> str | None:
        template = self.account.dashboard_url or self.dashboard_url_template
        return self.fill_settings(template) if template is not None else None

    def fill_settings(self, text: str) -> str:
        """`text` with ``{setting}`` placeholders filled from this account's non-secret settings."""
        values = {"base_url": self.base_url, "account": self.account_name}
        for key in type(self.account).model_fields:
            value = getattr(self.account, key)
            if key not in _SETTINGS_NOT_SHOWN and isinstance(value, str):
                values[key] = value
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    def phase_of(self, state: str | None) -> CampaignPhase:
        """The meaning of a raw campaign status, through the declared phase table."""
        if state is None:
            return CampaignPhase.UNKNOWN
        return self.phases.get(status_key(state), CampaignPhase.UNKNOWN)

    # ----- secrets -----------------------------------------------------------------------------

    def secret_values(self) -> list[str]:
        """Every secret this adapter holds (the account's SecretStr fields, session tokens)."""
        values = [
            value.get_secret_value()
            for name in type(self.account).model_fields
            if isinstance(value := getattr(self.account, name), SecretStr)
        ]
        values += self.auth.secrets()
        return [v for v in values if len(v) >= 4]

    def scrub(self, text: str) -> str:
        """`text` with every secret of this adapter replaced, for anything a person or a log sees."""
        for secret in self.secret_values():
            text = text.replace(secret, "<redacted>")
        return text

    # ----- the operations ----------------------------------------------------------------------

    def rules(self) -> Rules:
        """What the engine needs to know about this provider."""
        return Rules(
            display_name=self.display_name,
            repeat_safe=self.repeat_safe,
            reads=self.reads,
            resend_when_refused_but_active=self.resend_when_refused_but_active,
            max_attempts=self.options.max_attempts,
            backoff=self.options.backoff,
            before_timeout=self.options.preview_timeout,
        )

    async def stop(
        self, campaign_id: str, *, earlier: Sequence[Attempt] = (), log: AttemptLog | None = None
    ) -> Outcome:
        """Stop the campaign by the engine's rules; every failure is an `Outcome`, never an exception."""
        budget = Budget(self.options.deadline, self.options.timeout)
        try:
            cid = self.parse_campaign_id(campaign_id)
        except CampaignIdError as exc:
            return self.outcome(S.INVALID_REQUEST, str(campaign_id), budget, detail=f"{exc} No stop was sent.")
        return await run_stop(self, self.rules(), cid, budget, earlier=earlier, log_to=log)

    async def preview(self, campaign_id: str) -> CampaignInfo:
        """Describe the campaign for the card; raise `PreviewUnavailable` with a plain reason."""
        try:
            cid = self.parse_campaign_id(campaign_id)
        except CampaignIdError as exc:
            raise PreviewUnavailable(str(exc)) from None
        call = self.preview_call(cid)
        if call is None:
            raise PreviewUnavailable(self.no_preview_reason or f"{self.display_name} cannot describe a campaign.")
        wait = self.options.preview_timeout
        try:
            # The calls themselves may take longer than `wait`: the card must say it was too slow.
            async with asyncio.timeout(wait):
                read = await self._read(call, cid, Budget(2 * wait, 2 * wait), None)
        except TimeoutError:
            raise PreviewUnavailable(f"{self.display_name} did not answer within {wait:g} s") from None
        if read.info is None:
            raise PreviewUnavailable(self.scrub(read.problem))
        return read.info

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        """The campaign's current state, or None when it cannot be learned. Never raises."""
        try:
            cid = self.parse_campaign_id(campaign_id)
        except CampaignIdError:
            return None
        return (await self.read(cid, Budget(self.options.deadline, self.options.timeout))).info

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.channel.aclose()

    # ----- the engine's wire (see `bot.providers.engine.Wire`) ---------------------------------

    async def send_stop(
        self, campaign_id: str, budget: Budget, reserve: float, sending: Sending | None = None
    ) -> Verdict:
        """Send the stop once (auth included) and judge the answer; never raises.

        `sending` is awaited once the limiter let the stop call through, right before it leaves."""
        call = self.stop_call(campaign_id)
        call = call.with_method(self._methods.get(call.method, call.method))
        name = self.display_name
        try:
            reply = await self.exchange(call, budget, reserve=reserve, sending=sending)
            fallback = self.method_fallbacks.get(call.method)
            if reply.status == 405 and fallback is not None:
                log.info("%s: %s on the stop route answered 405; using %s from now on", name, call.method, fallback)
                self._methods[call.method] = fallback
                reply = await self.exchange(call.with_method(fallback), budget, reserve=reserve, sending=sending)
        except NotSent as exc:
            return Verdict(Kind.NOT_SENT, S.UNREACHABLE, f"{name} could not be reached ({exc}).")
        except AuthRefused as exc:
            return Verdict(
                Kind.NOT_SENT,
                exc.status,
                f"{name}: logging in failed ({exc}), so the stop was not sent.",
                retryable=exc.retryable,
                http_status=exc.http_status,
            )
        except NoAnswer as exc:
            return Verdict(
                Kind.DOUBT, S.PROVIDER_ERROR, f"{name} gave no answer to the stop ({exc}).",
                may_have_applied=True, unclear=True,
            )
        return self.judge(reply, campaign_id)

    async def read(self, campaign_id: str, budget: Budget, timeout: float | None = None) -> Read:
        """Read the campaign's state once; never raises."""
        call = self.read_call(campaign_id)
        if call is None:
            return Read(None, f"{self.display_name} has no call that reads one campaign")
        return await self._read(call, campaign_id, budget, timeout)

    async def _read(self, call: Call, campaign_id: str, budget: Budget, timeout: float | None) -> Read:
        try:
            reply = await self.exchange(call, budget, timeout=timeout)
        except (NotSent, NoAnswer) as exc:
            return Read(None, f"{self.display_name} did not answer the read ({exc})", transient=True)
        except AuthRefused as exc:
            return Read(None, f"logging in failed ({exc})")
        info = self.campaign_of(reply, campaign_id) if reply.ok else None
        if info is None:
            read = self.read_problem(reply, campaign_id)
            return Read(None, self.scrub(read.problem), read.status, read.transient, read.trace_id)
        if info.phase is None:
            info = info.model_copy(update={"phase": self.phase_of(info.state)})
        return Read(bounded_info(info), trace_id=self.stop_body(reply).trace_id)

    def outcome(self, status: OutcomeStatus, campaign_id: str, budget: Budget, **fields: Any) -> Outcome:
        """Build an `Outcome`: provider, account and timing filled in, every text scrubbed and bounded."""
        limits = {"detail": MAX_DETAIL, "provider_message": MAX_MESSAGE}
        for key in ("detail", "provider_message", "provider_status", "provider_code", "trace_id",
                    "state_before", "state_after"):
            if isinstance(fields.get(key), str):
                fields[key] = clip(self.scrub(fields[key]), limits.get(key, MAX_WORD))
        if isinstance(fields.get("campaign"), CampaignInfo):
            fields["campaign"] = bounded_info(fields["campaign"])
        fields.setdefault("attempts", 0)
        return Outcome(
            status=status,
            provider=self.name,
            account=self.account_name,
            campaign_id=campaign_id,
            elapsed_ms=budget.elapsed_ms,
            **fields,
        )

    # ----- judging a stop answer from the declared tables --------------------------------------

    def judge(self, reply: Reply, campaign_id: str) -> Verdict:
        """What one stop answer means: the body's verdict counts as much as the HTTP status."""
        body = self.stop_body(reply)
        name, http = self.display_name, reply.status
        said = self.said(reply, body)
        coded = self.code_status(body.code, body.message)
        facts: dict[str, Any] = {
            "http_status": http,
            "provider_status": body.state,
            "provider_code": body.code,
            "provider_message": body.message,
            "trace_id": body.trace_id,
            "campaign": body.campaign,
            "extra": body.extra,
        }

        def verdict(kind: Kind, status: OutcomeStatus, headline: str, **more: Any) -> Verdict:
            return Verdict(kind, status, self.scrub(headline), **{**facts, **more})

        if http == 429 or coded is S.RATE_LIMITED:
            wait = reply.retry_after()
            return verdict(Kind.DOUBT, S.RATE_LIMITED, f"{name}'s rate limit refused the stop ({said}).",
                           retry_after=wait if wait is not None else self.default_retry_after)
        if 300 <= http < 400:
            return verdict(Kind.REFUSED, S.PROVIDER_ERROR,
                           f"{name} answered with a redirect (HTTP {http}), which is not followed: check the base URL.")
        if reply.ok:
            if body.success is True:
                result = body.result or S.STOPPED
                return verdict(Kind.DONE, result, self._accepted(result, body, said))
            if body.success is False:
                if coded in _ALREADY:
                    return verdict(Kind.DONE, coded, self._accepted(coded, body, said))
                if coded is not None and coded is not S.PROVIDER_ERROR:
                    return verdict(Kind.REFUSED, coded, self._refusal(coded, said, campaign_id))
                return verdict(Kind.FAILED, S.PROVIDER_ERROR, f"{name} answered HTTP {http} but reported a failure "
                               f"({said}).")
            shown = reply.snippet() or "(empty body)"
            return verdict(Kind.DOUBT, S.PROVIDER_ERROR,
                           f"{name} sent an answer to the stop that cannot be read (HTTP {http}): {shown}.",
                           may_have_applied=True, unclear=True)
        tabled = coded or self.http_outcomes.get(http)
        if body.success is True and body.result in _ALREADY:
            tabled = body.result
        if tabled in _ALREADY:
            return verdict(Kind.DONE, tabled, self._accepted(tabled, body, said))
        if body.success is True and http < 500:
            return verdict(Kind.DOUBT, S.PROVIDER_ERROR, f"{name} answered HTTP {http} yet said success ({said}).",
                           may_have_applied=True, unclear=True)
        if http in self.refused_by_state_http:
            return verdict(Kind.REFUSED_BY_STATE, S.NOT_STOPPABLE,
                           f"{name} refused the stop: the campaign's state prevents it ({said}).")
        if http >= 500:
            return verdict(Kind.DOUBT, S.PROVIDER_ERROR, f"{name} failed ({said}).", may_have_applied=True)
        if http == 408:
            return verdict(Kind.DOUBT, S.PROVIDER_ERROR, f"{name} timed out waiting for the request ({said}).")
        if tabled is not None and tabled is not S.STOPPED:
            return verdict(Kind.REFUSED, tabled, self._refusal(tabled, said, campaign_id))
        fallback = S.INVALID_REQUEST if 400 <= http < 500 else S.PROVIDER_ERROR
        return verdict(Kind.REFUSED, fallback, self._refusal(fallback, said, campaign_id))

    def _accepted(self, result: OutcomeStatus, body: StopBody, said: str) -> str:
        name = self.display_name
        if result is S.ALREADY_STOPPED:
            return f"{name} answered that the campaign was already stopped ({said})."
        if result is S.ALREADY_COMPLETED:
            return f"{name} answered that the campaign had already finished ({said})."
        note = f": {body.note}" if body.note else ""
        return f"{name} accepted the stop{note}."

    def _refusal(self, status: OutcomeStatus, said: str, campaign_id: str) -> str:
        note = self.outcome_notes.get(status, "")
        if note:
            note = " " + self.fill_settings(note.replace("{campaign_id}", campaign_id))
        return f"{self.display_name} refused the stop ({said}).{note} Nothing was stopped."

    def said(self, reply: Reply, body: StopBody) -> str:
        """What the provider answered, compact: ``HTTP 404, code 73: Campaign not found; trace 65ab``."""
        text = f"HTTP {reply.status}"
        if body.code:
            text += f", code {body.code}"
        if body.message:
            text += f": {body.message}"
        elif not reply.is_json and reply.text.strip():
            text += f": {reply.snippet(120)}"
        if body.trace_id:
            text += f"; trace {body.trace_id}"
        return text

    # ----- authorized calls ---------------------------------------------------------------------

    async def exchange(
        self,
        call: Call,
        budget: Budget,
        *,
        reserve: float = 0.0,
        timeout: float | None = None,
        sending: Sending | None = None,
    ) -> Reply:
        """One authorized exchange; after a 401, renewed credentials and one repeat (a 401 changed nothing)."""
        prepared = await self.auth.prepare(call, budget)
        reply = await self.channel.send(prepared, budget, reserve=reserve, timeout=timeout, sending=sending)
        if reply.status == 401 and await self.auth.renew(prepared, budget):
            prepared = await self.auth.prepare(call, budget)
            reply = await self.channel.send(prepared, budget, reserve=reserve, timeout=timeout, sending=sending)
        return reply

def bounded_info(info: CampaignInfo) -> CampaignInfo:
    """A campaign description with every text clipped and at most 20 extra figures."""
    extra: dict[str, Any] = {}
    for key, value in list(info.extra.items())[:20]:
        extra[clip(str(key), 60)] = clip(value, MAX_WORD) if isinstance(value, str) else value
    return info.model_copy(
        update={
            "id": clip(info.id, MAX_WORD) if info.id else info.id,
            "name": clip(info.name, 300) if info.name else info.name,
            "state": clip(info.state, MAX_WORD) if info.state else info.state,
            "kind": clip(info.kind, MAX_WORD) if info.kind else info.kind,
            "extra": extra,
        }
    )
