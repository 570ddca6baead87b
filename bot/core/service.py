"""StopService: the core as every front end uses it (Slack, the console, the CLI).

It holds no logic of its own beyond the preview: it parses, and hands each job to the module
whose name says it (`lifecycle`, `execution`, `outbox`, `recovery`). Front ends call these
methods and render what they return; they never reach the store, the policy or an adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.core.context import request_id_var
from bot.core.execution import Execution, Interrupted
from bot.core.lifecycle import Lifecycle
from bot.core.models import (
    Actor,
    AuditEntry,
    ProviderFacts,
    ProviderHealth,
    ProviderKind,
    RequestState,
    StopRequest,
    utcnow,
)
from bot.core.outbox import Outbox
from bot.core.parsing import Command, StopCommand, find_target, form_command, parse_command
from bot.core.policy import Policy, PolicyRefusal, mentions
from bot.core.ports import AnnounceProblem, Notifier, PreviewUnavailable, ProviderCatalog, Store, facts_for
from bot.core.recheck import RECHECKABLE, check_again
from bot.core.recovery import Recovery
from bot.core.render import help_text
from bot.core.results import ClickResult, Preview, ReplyLink
from bot.core.timebox import within

log = logging.getLogger(__name__)

STORE_ANSWER_SECONDS = 5.0
"""How long a click waits for the store before telling the clicker it is unreachable."""
STORE_DOWN = "stopcampaign's store is unreachable, so {what}. Press {button} again in a moment."
CHECK_LEASE_SECONDS = 60.0
"""How long one Check again holds the request (a read, or a repeat-safe stop, within its budget)."""
CHECK_QUIET_SECONDS = 5.0
"""After a check, further clicks wait this long: a double click checks (and sends) once."""
BEING_CHECKED = "Someone is checking this stop again right now, or just did: its records show the result."
ANNOUNCE_WAIT_SECONDS = 5.0
"""How long a confirm waits for its live record's post before it answers (the outbox goes on after)."""
SHUTTING_DOWN = (
    "stopcampaign is restarting: your stop is kept and is sent as soon as it is back (within a minute or two)."
)


def _store_trouble(click: str, request_id: str, exc: Exception) -> None:
    """One log line saying why a click did nothing (never a traceback: the store is down, not a bug)."""
    reason = "it did not answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
    log.warning("%s click not taken: the store is unreachable (%s)", click, reason, extra={"request_id": request_id})


class StopService:
    """Creates, confirms, cancels and expires stop requests; runs, announces and resumes stops."""

    def __init__(
        self,
        store: Store,
        catalog: ProviderCatalog,
        notifier: Notifier,
        *,
        policy: Policy | None = None,
        ttl: timedelta = timedelta(minutes=10),
        preview_timeout: float = 2.0,
        execute_cap: float = 600.0,
        heartbeat_seconds: float = 15.0,
        resume_max_age: timedelta = timedelta(hours=1),
        outbox_lease_seconds: float = 60.0,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._policy = policy or Policy()
        self.preview_timeout = preview_timeout
        self._notifier = notifier
        self._records: set[asyncio.Task[None]] = set()
        self.lifecycle = Lifecycle(store, catalog, self._policy, notifier, ttl=ttl)
        self.outbox = Outbox(store, notifier, lease_seconds=outbox_lease_seconds)
        self.execution = Execution(
            store, catalog, notifier, self.outbox, cap_seconds=execute_cap, heartbeat_seconds=heartbeat_seconds
        )
        self.recovery = Recovery(store, self.execution, resume_max_age=resume_max_age)

    # ----- what front ends show ----------------------------------------------------------------

    def parse(self, text: str | None) -> Command:
        """Parse command text; raises `UsageError` with a clear message."""
        return parse_command(text, self._catalog)

    def form(self, target: str | None, raw_id: str | None, reason: str | None) -> StopCommand:
        """A stop from a form's fields; raises `FormError` naming the field that is wrong."""
        return form_command(target, raw_id, reason, self._catalog)

    def health(self, provider: str, account: str) -> ProviderHealth | None:
        """What this process saw of one account's API lately (last success, last error)."""
        return self._catalog.health(provider, account)

    def targets(self) -> list[tuple[ProviderKind, list[str]]]:
        """Every configured provider with its account names (default first), for pickers."""
        return [(kind, self._catalog.accounts(kind.name)) for kind in self._catalog.configured()]

    def find_target(self, text: str) -> tuple[str | None, str | None]:
        """Guess (``provider:account``, campaign id) from free text such as an alert message: a
        provider named by name or alias, a word in that provider's id format, or a dashboard URL
        that carries one. Either part is None when the text does not tell."""
        return find_target(text, self._catalog)

    def help(self) -> str:
        """The help text: usage, and the configured providers and accounts."""
        return help_text(self._catalog)

    def facts(self, provider: str, account: str) -> ProviderFacts:
        """What a card or an outcome may show about one account (also once it is unconfigured)."""
        return facts_for(self._catalog, provider, account)

    async def approver_ids(self, request: StopRequest) -> list[str]:
        """The Slack users who may approve a two-person request (to send them its card)."""
        return await self._policy.approver_ids(request)

    def approvers(self, request: StopRequest) -> str | None:
        """Who may approve a two-person request, as Slack mentions (None: anyone but the requester)."""
        if not request.two_person:
            return None
        confirmers = self._policy.rule(request.provider, request.account).confirmers
        return mentions(confirmers) if confirmers else None

    async def request(self, request_id: str) -> StopRequest | None:
        """One request as it stands now."""
        return await self._store.get(request_id)

    async def history(
        self, viewer: Actor, provider: str | None = None, account: str | None = None, limit: int = 10
    ) -> list[StopRequest]:
        """The latest requests `viewer` may see (the policy decides), newest first."""
        if self._policy.config.is_open:
            return await self._store.history(provider, account, limit)
        visible = [
            (kind.name, name)
            for kind in self._catalog.configured()
            for name in self._catalog.accounts(kind.name)
            if (provider is None or kind.name == provider)
            and (account is None or name == account)
            and await self._policy.may_view(viewer, kind.name, name)
        ]
        return await self._store.history(provider, account, limit, only=visible)

    async def trail(self, viewer: Actor, request_id: str) -> tuple[StopRequest | None, list[AuditEntry]]:
        """One request and its whole audit trail; `PolicyRefusal` when `viewer` may not see it."""
        request = await self._store.get(request_id)
        if request is None:
            return None, []
        await self._policy.check_view(viewer, request)
        return request, await self._store.audit(request_id)

    # ----- what front ends do ------------------------------------------------------------------

    async def create_request(
        self,
        command: StopCommand,
        requester: Actor,
        *,
        team_id: str | None = None,
        channel_id: str | None = None,
        response_url: str | None = None,
        defer_insert: bool = False,
    ) -> StopRequest:
        """A pending request (see `Lifecycle.create`); raises `PolicyRefusal` when not allowed."""
        return await self.lifecycle.create(
            command, requester, team_id=team_id, channel_id=channel_id, response_url=response_url, defer=defer_insert
        )

    async def waiting_for(self, viewer: Actor) -> list[StopRequest]:
        """Pending requests `viewer` can act on: their own to confirm, others' to approve."""
        waiting = []
        for request in await self._store.pending_requests():
            if request.requester.id != viewer.id and not request.two_person:
                continue
            try:
                await self._policy.check_confirm(viewer, request)
            except PolicyRefusal:
                continue
            waiting.append(request)
        return waiting

    async def others_pending(self, request: StopRequest) -> list[StopRequest]:
        """Other requests still pending on the same campaign (their requesters may be on it already)."""
        pending = await self._store.pending_for_campaign(request.provider, request.account, request.campaign_id)
        return [other for other in pending if other.id != request.id]

    async def announce_request(self, request: StopRequest) -> None:
        """Post what a new request owes now, once it is stored: a two-person request's live record,
        and its card by DM to each approver the policy names (kept up to date like the record, so
        no approver keeps a live button of a request that ended)."""
        if not request.two_person or not await self._store.saved(request.id):
            return
        try:
            approvers = await self._policy.approver_ids(request)
            if approvers:
                await self._store.add_deliveries(request.id, await self._notifier.direct_posts(approvers))
        except Exception as exc:
            log.warning("could not owe the approvers their cards: %s", type(exc).__name__,
                        extra={"request_id": request.id})
        await self._post_record(request.id)

    async def announce_problems(self, request_id: str) -> list[AnnounceProblem]:
        """What the request's posts could not do so far (a channel that refused the app…)."""
        return await self._store.announce_problems(request_id)

    async def saved(self, request_id: str) -> bool:
        """True once a request written in the background is stored (False: the write failed)."""
        return await self._store.saved(request_id)

    async def load_preview(self, request: StopRequest) -> Preview:
        """Ask the provider about the campaign (bounded by the preview timeout) and keep the answer."""
        adapter = self._catalog.get(request.provider, request.account)
        if adapter is None:
            return Preview(None, "this account is no longer configured")
        facts = adapter.facts
        if not facts.has_preview:
            return Preview(None, facts.no_preview_reason)
        try:
            async with asyncio.timeout(self.preview_timeout * 2):
                preview = Preview(await adapter.preview(request.campaign_id))
        except PreviewUnavailable as exc:
            preview = Preview(None, adapter.scrub(str(exc)) or "the provider could not describe the campaign")
        except TimeoutError:
            preview = Preview(None, f"{facts.display_name} did not answer within {self.preview_timeout:g} s")
        except Exception:
            log.exception("preview failed", extra={"request_id": request.id})
            preview = Preview(None, "the preview failed unexpectedly")
        try:
            await self._store.set_preview(request.id, preview.info, preview.unavailable)
        except Exception:
            log.exception("could not store the preview", extra={"request_id": request.id})
        return preview

    async def confirm(
        self,
        request_id: str,
        actor: Actor,
        *,
        on_executing: Callable[[StopRequest], Awaitable[None]] | None = None,
        replace_card: bool = False,
        reply: ReplyLink | None = None,
    ) -> ClickResult:
        """Stop the campaign of a pending request, exactly once, and announce the outcome.

        With `replace_card` (front ends other than the card's own buttons: the console, the CLI),
        the request's Slack card is shown as ended once the outcome is known, so its buttons go.
        `reply` is where the click came from (a newer reply link for the request's conversation).
        """
        request_id_var.set(request_id)  # set here: the claim runs in a task of its own (`within`)
        try:
            claimed = await within(STORE_ANSWER_SECONDS, self.lifecycle.claim(request_id, actor, reply))
        except Exception as exc:  # nothing is sent unless the claim is stored: say so at once
            _store_trouble("Stop", request_id, exc)
            return ClickResult(None, refusal=STORE_DOWN.format(what="nothing was sent", button="Stop"))
        if isinstance(claimed, ClickResult):
            return claimed
        if on_executing is not None:
            try:
                await on_executing(claimed)
            except Exception:
                log.exception("on_executing hook failed", extra={"request_id": request_id})
        # "… is stopping …" goes out beside the provider call, never before it.
        record = asyncio.create_task(self._post_record(request_id), name=f"record-{request_id}")
        self._records.add(record)
        record.add_done_callback(self._records.discard)
        try:
            outcome, _ = await self.execution.run(claimed)
        except Interrupted:
            return ClickResult(claimed, refusal=SHUTTING_DOWN)
        # The outcome's posts were made beside the live record's; let that one finish too (bounded:
        # a slow Slack must not hold the answer), so what the posts could not do is known now.
        await asyncio.wait({record}, timeout=ANNOUNCE_WAIT_SECONDS)
        done = claimed.model_copy(update={"state": RequestState.DONE, "outcome": outcome})
        if replace_card and done.response_url:
            try:
                await self._notifier.card_ended(done)
            except Exception:
                log.exception("could not update the request's card", extra={"request_id": request_id})
        return ClickResult(done, outcome)

    async def decline(self, request_id: str, actor: Actor, comment: str = "") -> ClickResult:
        """An approver turns down a two-person request; nothing is sent to the provider."""
        request_id_var.set(request_id)
        try:
            return await within(
                STORE_ANSWER_SECONDS, self.lifecycle.decline(request_id, actor, " ".join(comment.split())[:300])
            )
        except Exception as exc:
            _store_trouble("Decline", request_id, exc)
            return ClickResult(None, refusal=STORE_DOWN.format(what="the request was not declined", button="Decline"))

    async def check_again(self, request_id: str, actor: Actor, reply: ReplyLink | None = None) -> ClickResult:
        """Settle an outcome that could not say for sure (see `bot.core.recheck`), update the records."""
        request_id_var.set(request_id)
        try:
            request = await within(STORE_ANSWER_SECONDS, self._store.get(request_id))
        except Exception as exc:
            _store_trouble("Check again", request_id, exc)
            return ClickResult(None, refusal=STORE_DOWN.format(what="nothing was checked", button="Check again"))
        if request is None:
            return ClickResult(None, refusal="This stop request does not exist.")
        if reply is not None and reply.url and reply.fits(request):
            # A newer reply link for a conversation that may not take the app's own posts.
            await self._store.refresh_response_url(request_id, reply.url)
            request = request.model_copy(update={"response_url": reply.url, "response_url_at": utcnow()})
        try:
            await self._policy.check_view(actor, request)
        except PolicyRefusal as refusal:
            return ClickResult(request, refusal=refusal.message)
        if request.outcome is None or request.outcome.status not in RECHECKABLE:
            return ClickResult(request, refusal="This outcome is final: there is nothing to check again.")
        adapter = self._catalog.get(request.provider, request.account)
        if adapter is None:
            return ClickResult(request, refusal="This account is no longer configured.")
        request_id_var.set(request_id)
        previous = request.outcome
        # One check at a time, and none right after one (a double click): a lease on the request,
        # taken with a compare-and-set, in one process or several.
        if not await self._store.claim_check(request_id, actor, outcome=previous, lease_seconds=CHECK_LEASE_SECONDS):
            return ClickResult(request, refusal=BEING_CHECKED)
        try:
            outcome = await check_again(request, adapter, self._store)
        except Exception:
            log.exception("check again failed", extra={"request_id": request_id})
            await self._store.end_check(request_id)
            return ClickResult(request, refusal="The check failed; nothing changed. Try again.")
        if not await self._store.revise_outcome(
            request_id, outcome, actor, previous=previous, quiet_seconds=CHECK_QUIET_SECONDS
        ):
            return ClickResult(request, refusal="The request changed meanwhile; try again.")
        await self.outbox.deliver(request_id)
        revised = request.model_copy(update={"outcome": outcome})
        return ClickResult(revised, outcome)

    async def _post_record(self, request_id: str) -> None:
        try:
            await self.outbox.deliver(request_id)
        except Exception:  # the outbox's own pass retries it
            log.warning("could not post the live record yet", extra={"request_id": request_id})

    async def cancel(self, request_id: str, actor: Actor) -> ClickResult:
        """End a pending request without any provider call."""
        request_id_var.set(request_id)
        try:
            return await within(STORE_ANSWER_SECONDS, self.lifecycle.cancel(request_id, actor))
        except Exception as exc:
            _store_trouble("Cancel", request_id, exc)
            return ClickResult(None, refusal=STORE_DOWN.format(what="the request was not cancelled", button="Cancel"))

    # ----- background jobs ---------------------------------------------------------------------

    async def expire_due(self) -> list[StopRequest]:
        """Expire pending requests past their expiry."""
        return await self.lifecycle.expire_due()

    async def recover_stuck(self, silent_for: timedelta) -> list[StopRequest]:
        """Resume stops no live process owns."""
        return await self.recovery.recover_stuck(silent_for)

    async def shutdown(self, grace: float) -> None:
        """Take no new stop; stops that sent nothing yet are left to be resumed, the rest get `grace`."""
        await self.execution.shutdown(grace)
        if self._records:  # live records under way: let them post (and update) before the process ends
            await asyncio.wait(set(self._records), timeout=grace)

    async def deliver(self, request_id: str | None = None) -> int:
        """Post what the outbox owes."""
        return await self.outbox.deliver(request_id)
