"""Configuration: env vars, the TOML file, and errors that name the bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config

CT = {"CLEVERTAP_ACCOUNT_ID": "ACC", "CLEVERTAP_PASSCODE": "pass-secret", "CLEVERTAP_REGION": "in1"}


def test_defaults_without_any_configuration() -> None:
    config = load_config({})
    assert config.accounts == {}
    settings = config.settings
    assert settings.port == 3000 and settings.request_ttl_seconds == 600
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_url.startswith("sqlite:///")


def test_env_account_and_settings() -> None:
    config = load_config({**CT, "PORT": "8080", "SLACK_API_URL": "http://127.0.0.1:1/api", "INCIDENT_CHANNEL": "C01"})
    assert config.settings.port == 8080
    assert config.settings.slack_api_url == "http://127.0.0.1:1/api/"
    assert config.accounts["clevertap"]["default"].account_id == "ACC"  # type: ignore[attr-defined]
    assert config.defaults == {"clevertap": "default"}
    assert "pass-secret" not in repr(config.accounts)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLEVERTAP_ACCOUNT_ID": "ACC"}, "CLEVERTAP_PASSCODE: required"),
        ({**CT, "CLEVERTAP_REGION": "xx9"}, "CLEVERTAP_REGION: unknown region"),
        ({**CT, "CLEVERTAP_BASE_URL": "ftp://x"}, "CLEVERTAP_BASE_URL: must be an http(s) URL"),
        ({**CT, "CLEVERTAP_BASE_URL": "http://h:abc"}, "CLEVERTAP_BASE_URL: must be an http(s) URL"),
        ({**CT, "CLEVERTAP_BASE_URL": "http://h\x01x/"}, "CLEVERTAP_BASE_URL: must be"),
        ({**CT, "CLEVERTAP_PASSCODE": "pässword"}, "CLEVERTAP_PASSCODE: must be printable ASCII"),
        ({"STUCK_EXECUTING_SECONDS": "2"}, "STUCK_EXECUTING_SECONDS: Input should be greater than or equal to 4"),
        ({"RESUME_MAX_AGE_SECONDS": "10"}, "RESUME_MAX_AGE_SECONDS: Input should be greater than or equal to 60"),
        ({"CLEVERTAP_PASSCODE": "p", "CLEVERTAP_BASE_URL": "https://x.example"}, "CLEVERTAP_ACCOUNT_ID: required"),
        ({"PORT": "eighty"}, "PORT:"),
        ({"REQUEST_TTL_SECONDS": "0"}, "REQUEST_TTL_SECONDS:"),
        ({"SLACK_API_URL": "slack.com"}, "SLACK_API_URL: must be an http(s) URL"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL:"),
        ({"STOPCAMPAIGN_CONFIG": "/nonexistent/stopcampaign.toml"}, "STOPCAMPAIGN_CONFIG: file"),
        # Neither a region nor a base URL: no silent fallback to the EU host (an India account would get 401s).
        ({"CLEVERTAP_ACCOUNT_ID": "ACC", "CLEVERTAP_PASSCODE": "pass-secret"}, "CLEVERTAP_REGION: required"),
        ({"INCIDENT_CHANNEL": "not-a-channel"}, "INCIDENT_CHANNEL: 'not-a-channel' is not a channel id such as "
                                                "C0123456789 (copy it from the channel's details)"),
        ({"INCIDENT_CHANNEL": "#incidents"}, "INCIDENT_CHANNEL: '#incidents' is not a channel id"),
        ({"INCIDENT_CHANNEL": "c0123456789"}, "INCIDENT_CHANNEL: 'c0123456789' is not a channel id"),
        ({"INCIDENT_CHANNEL": "U0ALICE"}, "INCIDENT_CHANNEL: 'U0ALICE' is not a channel id"),
        ({"INCIDENT_CHANNEL": "C"}, "INCIDENT_CHANNEL: 'C' is not a channel id"),
    ],
)
def test_errors_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert named in str(caught.value)
    assert "pass-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("C0123456789", "C0123456789"),
        ("C0INCIDENT", "C0INCIDENT"),  # the ids the tests use
        ("G0PRIVATE1", "G0PRIVATE1"),
        ("D0DIRECT01", "D0DIRECT01"),
        (" C0123456789 ", "C0123456789"),
        ("<#C0123456789|incidents>", "C0123456789"),  # pasted from a message
    ],
)
def test_incident_channel_ids_are_accepted(given: str, kept: str) -> None:
    assert load_config({"INCIDENT_CHANNEL": given}).settings.incident_channel == kept


def test_an_incident_channel_that_is_not_an_id_in_the_toml_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('incident_channel = "incidents"\n')
    with pytest.raises(ConfigError, match="INCIDENT_CHANNEL: 'incidents' is not a channel id such as C0123456789"):
        load_config({"STOPCAMPAIGN_CONFIG": str(path)})


def test_toml_file_with_several_accounts(tmp_path: Path) -> None:
    path = tmp_path / "stopcampaign.toml"
    path.write_text(
        'incident_channel = "C0INC"\nrequest_ttl_seconds = 300\n'
        '[providers.clevertap.eu]\naccount_id = "EU"\npasscode = "p1"\nregion = "eu1"\n'
        '[providers.ct.india]\naccount_id = "IN"\npasscode = "p2"\nregion = "in1"\ndefault = true\n'
    )
    config = load_config({"STOPCAMPAIGN_CONFIG": str(path), "REQUEST_TTL_SECONDS": "120"})
    assert config.settings.incident_channel == "C0INC"
    assert config.settings.request_ttl_seconds == 120  # env wins over the file
    assert set(config.accounts["clevertap"]) == {"eu", "india"}
    assert config.defaults["clevertap"] == "india"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[providers.mailchimp.a]\nkey = 1\n", "[providers.mailchimp]: unknown provider"),
        ('[providers.clevertap.a]\naccount_id = "A"\n', "[providers.clevertap.a] passcode: required"),
        ('[providers.clevertap.a]\naccount_id = "A"\npasscode = "p"\ncolour = 1\n', "colour: not a setting"),
        ('[providers.clevertap]\naccount_id = "A"\n', "expected one table per account"),
        ("bogus = 1\n", "unknown setting 'bogus'"),
        ("this is not toml", "is not valid TOML"),
    ],
)
def test_toml_errors_name_the_place(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config({"STOPCAMPAIGN_CONFIG": str(path)})
    assert named in str(caught.value)


def test_a_base_url_alone_does_not_configure_a_provider_but_warns() -> None:
    config = load_config({"CLEVERTAP_BASE_URL": "https://x.example", "ALTCRAFT_ABORT_IF_RUNNING": "false"})
    assert config.accounts == {}
    assert any("CLEVERTAP_BASE_URL set but CleverTap has no credentials" in w for w in config.warnings)


def test_several_accounts_of_one_provider_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "stopcampaign.toml"
    path.write_text(
        '[providers.altcraft.eu]\ntoken = "t1"\nbase_url = "https://eu.altcraft.example"\n'
        '[providers.altcraft.ru]\ntoken = "t2"\nabort_if_running = false\n'
        '[providers.sonarly.main]\napi_key = "sk_live_x"\naccount_group_id = "g1"\n'
    )
    config = load_config({"STOPCAMPAIGN_CONFIG": str(path)})
    assert set(config.accounts["altcraft"]) == {"eu", "ru"}
    assert config.accounts["altcraft"]["ru"].abort_if_running is False  # type: ignore[attr-defined]
    assert "altcraft" not in config.defaults  # two accounts, none marked default: commands must name one
    assert set(config.accounts["sonarly"]) == {"main"}


POLICY_ACCOUNTS = '[providers.clevertap.prod]\naccount_id = "A"\npasscode = "p"\nregion = "eu1"\n'


def test_policy_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        POLICY_ACCOUNTS + '[policy]\nrequesters = ["S0ONCALL"]\n'
        '[policy.providers.clevertap]\ntwo_person = true\nconfirmers = ["U0LEAD"]\n'
        '[policy.accounts."clevertap:prod"]\nchannels = ["C0INC"]\n'
    )
    config = load_config({"STOPCAMPAIGN_CONFIG": str(path)})
    assert config.policy.requesters == ["S0ONCALL"]
    assert config.policy.providers["clevertap"].two_person is True
    assert config.policy.accounts["clevertap:prod"].channels == ["C0INC"]


@pytest.mark.parametrize(
    ("policy", "named"),
    [
        ('[policy]\nrequesters = ["alice"]\n', "[policy] requesters: 'alice' is not a Slack user id"),
        ('[policy]\napprovers = ["U1"]\n', "[policy] approvers: not a setting"),
        ("[policy.providers.mailchimp]\ntwo_person = true\n", "[policy.providers.mailchimp]: unknown provider"),
        ('[policy.accounts."clevertap:nope"]\ntwo_person = true\n', 'clevertap:nope"]: no such configured account'),
        ('[policy.accounts."prod"]\ntwo_person = true\n', 'expected "<provider>:<account>"'),
        ('[policy]\nchannels = ["general"]\n', "[policy] channels: 'general' is not a Slack channel id"),
    ],
)
def test_policy_errors_name_the_key(tmp_path: Path, policy: str, named: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(POLICY_ACCOUNTS + policy)
    with pytest.raises(ConfigError) as caught:
        load_config({"STOPCAMPAIGN_CONFIG": str(path)})
    assert named in str(caught.value)


def test_a_config_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config({"STOPCAMPAIGN_CONFIG": str(path)})
    with pytest.raises(ConfigError, match="is a directory"):
        load_config({"STOPCAMPAIGN_CONFIG": str(tmp_path)})
