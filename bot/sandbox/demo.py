"""Configuration that points every provider at a running sandbox (``--sandbox``).

Real provider credentials from the environment are ignored on purpose: a demo must never be
able to stop a real campaign.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bot.config import AppConfig, load_config
from bot.providers.registry import ADAPTER_CLASSES, adapter_class
from bot.sandbox.server import Sandbox

SANDBOX_ACCOUNT = "sandbox"


DROPPED = frozenset({"STOPCAMPAIGN_CONFIG", "DATABASE_URL", "INCIDENT_CHANNEL"})


def sandbox_config(sandbox: Sandbox, url: str, workdir: Path, environ: Mapping[str, str] | None = None) -> AppConfig:
    """An `AppConfig` from the environment, minus provider settings, plus one sandbox account each.

    A demo never touches what a real deployment uses: its store is a throwaway SQLite file in
    `workdir` whatever DATABASE_URL says, and Slack, Redis and metrics settings are dropped, so it
    posts nothing to a configured workspace and shares no limits.
    """
    env = dict(os.environ if environ is None else environ)
    prefixes = (*(cls.env_prefix for cls in ADAPTER_CLASSES), "SLACK_", "REDIS_", "METRICS_")
    env = {k: v for k, v in env.items() if not k.startswith(prefixes) and k not in DROPPED}
    env["DATABASE_URL"] = f"sqlite:///{workdir / 'sandbox.db'}"
    base = load_config(env)
    accounts = {}
    for provider, named in sandbox.accounts(url).items():
        klass = adapter_class(provider)
        if klass is None:
            continue
        accounts[provider] = {name: klass.account_model.model_validate(values) for name, values in named.items()}
    return AppConfig(base.settings, accounts, {provider: SANDBOX_ACCOUNT for provider in accounts})
