"""Configuration: environment variables, plus an optional TOML file for several accounts per provider.

Environment variables win over the file. Every problem is reported at start as a `ConfigError`
naming the setting (``CLEVERTAP_PASSCODE``, ``[providers.clevertap.prod] region``), never later.

The TOML file (path in ``STOPCAMPAIGN_CONFIG``)::

    incident_channel = "C0123456789"        # any global setting, lowercase name
    request_ttl_seconds = 600

    [providers.clevertap.prod]
    account_id = "W9R-Z8K-123Z"
    passcode = "…"
    region = "in1"
    default = true                         # used when a command names no account
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.core.policy import PolicyConfig
from bot.providers.accounts import AccountSettings
from bot.providers.registry import ADAPTER_CLASSES, AdapterClass, adapter_class

DEFAULT_ACCOUNT = "default"
CONVERSATION_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
"""A Slack conversation id: ``C`` (channel), ``G`` (private channel, group DM) or ``D`` (DM), then
upper-case letters and digits (the shape `bot.core.policy` accepts for ``channels``)."""
_CHANNEL_MENTION = re.compile(r"<#([A-Z0-9]+)(?:\|[^>]*)?>")


class ConfigError(Exception):
    """The configuration is unusable; the message names every bad setting."""


class Settings(BaseSettings):
    """Global settings, from env vars (upper-case names) or top-level keys of the TOML file."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="forbid", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = Field(default=3000, ge=0, le=65535)
    host: str = "0.0.0.0"  # noqa: S104 - a web process listens on every interface by design
    database_url: str = "sqlite:///stopcampaign.db"
    incident_channel: str | None = None
    request_ttl_seconds: int = Field(default=600, ge=1, le=86_400)
    provider_timeout_seconds: float = Field(default=8.0, gt=0, le=120)
    provider_deadline_seconds: float = Field(default=20.0, gt=0, le=600)
    preview_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    stuck_executing_seconds: int = Field(default=120, ge=4, le=86_400)
    """A confirmed stop with no heartbeat for this long belongs to a dead process and is resumed."""
    resume_max_age_seconds: int = Field(default=3600, ge=60, le=7 * 86_400)
    """A click not yet sent when its process died is sent on resume up to this age, else `not_sent`."""
    outbox_lease_seconds: int = Field(default=60, ge=20, le=3600)
    """How long one process holds an owed post while it makes it (Slack's own waits are capped far below)."""
    group_members_max_age_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    """How stale the stored members of a policy user group may be when Slack cannot be asked."""
    migrate_on_start: bool = True
    redis_url: str | None = None
    redis_prefix: str = Field(default="stopcampaign", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve /metrics on this port of its own (on HOST), apart from the Slack port."""
    metrics_token: SecretStr | None = None
    """Serve /metrics on the Slack port to requests bearing this token (Authorization: Bearer …)."""
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    """How `serve` and `socket` log (the console front ends always log readable text)."""
    stopcampaign_config: Path | None = None

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_ends_with_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("incident_channel")
    @classmethod
    def _incident_channel_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        mention = _CHANNEL_MENTION.fullmatch(text)  # pasted from a message: <#C0123456789|incidents>
        channel = mention.group(1) if mention else text
        if not CONVERSATION_ID.fullmatch(channel):
            shown = value if len(value) <= 60 else value[:57] + "…"
            raise ValueError(
                f"{shown!r} is not a channel id such as C0123456789 (copy it from the channel's details)"
            )
        return channel

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("must be a redis:// or rediss:// URL such as redis://localhost:6379/0")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        if not parts.hostname:
            raise ValueError("names no host")
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ValueError("has a database that is not a number (use /0, /1…)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme.split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must be sqlite:///path.db or postgresql://user:password@host:5432/db")
        try:
            port = urlsplit(value).port
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        parts = urlsplit(value)
        if scheme != "sqlite" and not parts.hostname and port is None and "host=" not in parts.query:
            raise ValueError("names no host")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `load_config` merges env vars over the TOML file itself and passes the result in, so
        # that an explicit environment (tests, the sandbox) is never mixed with os.environ.
        return (init_settings,)


class AppConfig:
    """Everything the app needs: global settings and the accounts of every provider."""

    def __init__(
        self,
        settings: Settings,
        accounts: Mapping[str, Mapping[str, AccountSettings]],
        defaults: Mapping[str, str],
        warnings: list[str] | None = None,
        policy: PolicyConfig | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or PolicyConfig()
        self.warnings = list(warnings or [])
        self.accounts = {provider: dict(named) for provider, named in accounts.items() if named}
        self.defaults = dict(defaults)


def load_config(environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read env vars and the optional TOML file; raise `ConfigError` naming every bad setting."""
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    document = _read_toml(env.get("STOPCAMPAIGN_CONFIG"), problems)

    toml_globals = {k: v for k, v in document.items() if k not in ("providers", "policy")}
    settings = _build_settings(env, toml_globals, problems)
    accounts, defaults = _toml_accounts(document.get("providers", {}), problems)
    policy = _policy(document.get("policy", {}), problems)
    warnings: list[str] = []
    for cls in ADAPTER_CLASSES:
        account = _env_account(cls, env, problems, warnings)
        if account is not None:
            accounts.setdefault(cls.name, {})[DEFAULT_ACCOUNT] = account
            defaults.setdefault(cls.name, DEFAULT_ACCOUNT)
    if policy is not None:
        _check_policy_targets(policy, accounts, problems)
    if problems or settings is None:
        raise ConfigError("\n".join(f"configuration problem: {p}" for p in problems))
    return AppConfig(settings, accounts, defaults, warnings, policy)


def _read_toml(path_text: str | None, problems: list[str]) -> dict[str, Any]:
    if not path_text:
        return {}
    path = Path(path_text)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        problems.append(f"STOPCAMPAIGN_CONFIG: file {path} does not exist")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"STOPCAMPAIGN_CONFIG: {path} is not valid TOML ({exc})")
    except UnicodeDecodeError:
        problems.append(f"STOPCAMPAIGN_CONFIG: {path} is not UTF-8 text")
    except IsADirectoryError:
        problems.append(f"STOPCAMPAIGN_CONFIG: {path} is a directory")
    except OSError as exc:
        problems.append(f"STOPCAMPAIGN_CONFIG: cannot read {path} ({exc.strerror})")
    return {}


def _toml_kind(annotation: Any) -> type:
    """The TOML type a setting takes: bool, int, float or str (secrets, paths and choices are text)."""
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    if get_origin(annotation) is Literal:
        return str
    for kind in (bool, int, float):
        if kind in args:
            return kind
    return str


def _toml_type_problem(model: type[BaseModel], key: str, value: Any, where: str) -> str | None:
    """TOML values have types: `default = "yes"` or `port = "80"` is an error, not a guess."""
    field = model.model_fields.get(key.lower())
    if field is None:
        return None
    kind = _toml_kind(field.annotation)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[kind]
    if ok:
        return None
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a quoted string"}
    return f"{where}{key}: must be {names[kind]} in TOML, not {type(value).__name__} {value!r}"[:300]


def _build_settings(env: Mapping[str, str], toml_globals: dict[str, Any], problems: list[str]) -> Settings | None:
    known = set(Settings.model_fields)
    for key in list(toml_globals):
        if key.lower() not in known:
            problems.append(f"config file: unknown setting {key!r}")
            del toml_globals[key]
            continue
        problem = _toml_type_problem(Settings, key, toml_globals[key], "config file: ")
        if problem is not None:
            problems.append(problem)
            del toml_globals[key]
    values = {key.lower(): value for key, value in toml_globals.items()}
    values.update({key.lower(): value for key, value in env.items() if key.lower() in known and value.strip()})
    try:
        return Settings(**values)
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"]:
                problems.append(f"{str(error['loc'][0]).upper()}: {_explain(error)}")
            else:
                problems.append(_explain(error))
        return None


def _env_account(
    cls: AdapterClass, env: Mapping[str, str], problems: list[str], warnings: list[str]
) -> AccountSettings | None:
    values: dict[str, str] = {}
    for field in cls.account_model.model_fields:
        raw = env.get(cls.env_prefix + field.upper(), "").strip()
        if raw:
            values[field] = raw
    if not set(values) - cls.env_modifiers:
        if values:
            names = ", ".join(cls.env_prefix + f.upper() for f in sorted(values))
            warnings.append(f"{names} set but {cls.display_name} has no credentials: it is not offered")
        return None
    try:
        return cls.account_model.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"{cls.env_prefix}{field.upper()}: {_explain(error)}")
        return None


def _toml_accounts(section: Any, problems: list[str]) -> tuple[dict[str, dict[str, AccountSettings]], dict[str, str]]:
    accounts: dict[str, dict[str, AccountSettings]] = {}
    defaults: dict[str, str] = {}
    if not isinstance(section, dict):
        problems.append("[providers] must be a table of provider tables")
        return accounts, defaults
    for provider_name, named in section.items():
        cls = adapter_class(provider_name)
        if cls is None:
            known = ", ".join(c.name for c in ADAPTER_CLASSES)
            problems.append(f"[providers.{provider_name}]: unknown provider (known: {known})")
            continue
        if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
            problems.append(
                f"[providers.{provider_name}]: expected one table per account, e.g. [providers.{cls.name}.prod]"
            )
            continue
        for account_name, raw in named.items():
            where = f"[providers.{provider_name}.{account_name}]"
            if not _valid_account_name(account_name):
                problems.append(f"{where}: account names use letters, digits, '-' and '_' only")
                continue
            values = dict(raw)
            is_default = values.pop("default", False)
            if not isinstance(is_default, bool):
                problems.append(f"{where} default: must be true or false, not {is_default!r}"[:300])
                continue
            typed = [_toml_type_problem(cls.account_model, k, v, f"{where} ") for k, v in values.items()]
            if any(typed):
                problems.extend(p for p in typed if p)
                continue
            try:
                account = cls.account_model.model_validate(values)
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(p) for p in error["loc"])
                    problems.append(f"{where} {field}: {_explain(error)}")
                continue
            accounts.setdefault(cls.name, {})[account_name] = account
            if is_default is True:
                if cls.name in defaults:
                    problems.append(f"{where}: only one {cls.name} account can be the default")
                defaults[cls.name] = account_name
    return accounts, defaults


def _policy(section: Any, problems: list[str]) -> PolicyConfig | None:
    if not isinstance(section, dict):
        problems.append("[policy] must be a table")
        return None
    try:
        return PolicyConfig.model_validate(section)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            problems.append(f"[policy] {where}: {_explain(error)}")
        return None


def _check_policy_targets(
    policy: PolicyConfig, accounts: Mapping[str, Mapping[str, AccountSettings]], problems: list[str]
) -> None:
    """Policy tables must name known providers and configured accounts (typos must not open a hole)."""
    for provider in policy.providers:
        if adapter_class(provider) is None or adapter_class(provider).name != provider:  # type: ignore[union-attr]
            problems.append(f"[policy.providers.{provider}]: unknown provider (use its canonical name)")
    for target in policy.accounts:
        provider, _, account = target.partition(":")
        if adapter_class(provider) is None or not account:
            problems.append(f'[policy.accounts."{target}"]: expected "<provider>:<account>"')
        elif account not in accounts.get(provider, {}):
            problems.append(f'[policy.accounts."{target}"]: no such configured account')


def _valid_account_name(name: str) -> bool:
    return bool(name) and len(name) <= 40 and all(c.isalnum() or c in "-_" for c in name) and name.isascii()


def _explain(error: Any) -> str:
    if error.get("type") == "missing":
        return "required but not set"
    if error.get("type") == "extra_forbidden":
        return "not a setting of this provider"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")
