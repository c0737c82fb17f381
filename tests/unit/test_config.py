"""Settings: validated at start, with errors that name the variable and never its value."""

import pytest

from bot.config import ConfigError, Settings, async_database_url, load_settings
from bot.preflight import shown


def test_defaults_are_the_embedded_ones() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///vpsbot.db"
    assert settings.vps_api_url == "https://admin.vps.org/api/v1"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.port == 3000
    assert settings.vpsbot_required_approvals == 1
    assert settings.vpsbot_approval_ttl == 30
    assert settings.vpsbot_poll_interval == 15
    assert settings.vpsbot_approvers == ()


def test_id_lists_are_read_from_commas_or_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPSBOT_APPROVERS", "U1, U2 S3")
    monkeypatch.setenv("VPSBOT_CHANNELS", "")
    settings = load_settings()
    assert settings.vpsbot_approvers == ("U1", "U2", "S3")
    assert settings.vpsbot_channels == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VPSBOT_REQUIRED_APPROVALS", "zero-secret-value"),
        ("VPSBOT_APPROVAL_TTL", "-5"),
        ("PORT", "70000"),
        ("DATABASE_URL", "mysql://user:hunter2@db/x"),
        ("VPS_API_URL", "ftp://hunter2.example"),
    ],
)
def test_a_bad_value_names_the_variable_but_not_the_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{name} is invalid")
    assert value not in message
    assert "hunter2" not in message


def test_serve_requires_the_slack_and_vps_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    with pytest.raises(ConfigError, match=r"^SLACK_SIGNING_SECRET is required"):
        load_settings().require_for("serve")


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("VPS_API_TOKEN", "vps-very-secret")
    shown = repr(load_settings()) + str(load_settings().model_dump())
    assert "very-secret" not in shown


@pytest.mark.parametrize(
    ("url", "mapped"),
    [
        ("sqlite:///vpsbot.db", "sqlite+aiosqlite:///vpsbot.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_plain_database_urls_map_to_async_drivers(url: str, mapped: str) -> None:
    assert async_database_url(url) == mapped


def test_tokens_and_urls_are_read_without_surrounding_spaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VPS_API_TOKEN", " vps-token-pasted\n")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret ")
    monkeypatch.setenv("VPS_API_URL", "https://admin.vps.org/api/v1 ")
    settings = load_settings()
    assert settings.vps_api_token is not None
    assert settings.vps_api_token.get_secret_value() == "vps-token-pasted"
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == "signing-secret"
    assert settings.vps_api_url == "https://admin.vps.org/api/v1"


def test_a_token_of_spaces_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "   ")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "\t")
    monkeypatch.setenv("VPS_API_TOKEN", "vps")
    with pytest.raises(ConfigError) as caught:
        load_settings("serve")
    assert caught.value.problems == [
        "SLACK_BOT_TOKEN is required but not set",
        "SLACK_SIGNING_SECRET is required but not set",
    ]


def test_an_empty_variable_takes_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "")
    monkeypatch.setenv("LOG_LEVEL", "")
    assert load_settings().port == 3000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VPSBOT_APPROVERS", "bob,alice"),  # names match nobody: no one could ever approve
        ("VPSBOT_APPROVERS", "U0000BOB @carol"),
        ("VPSBOT_OPERATORS", "ops-team"),
        ("VPSBOT_CHANNELS", "#ops"),
        ("VPS_API_URL", "http://127.0.0.1:99999/api/v1"),
        ("VPS_API_URL", "http://127.0.0.1:abc/api/v1"),
        ("SLACK_API_URL", "https://user:hunter2@slack.example/api/"),
        ("DATABASE_URL", "postgresql://u:pw@127.0.0.1:abc/db"),
        ("DATABASE_URL", "postgresql://u:Sec@hunter2@127.0.0.1/db"),  # an unescaped @
        ("DATABASE_URL", "sqlite:///"),
        ("DATABASE_URL", "postgresql:///nohost"),
    ],
)
def test_values_the_bot_could_not_use_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{name} is invalid: expected ")
    assert "hunter2" not in str(caught.value)
    assert f" {value}" not in str(caught.value).replace(" sqlite:///vpsbot.db", "")


def test_ids_and_a_postgresql_socket_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPSBOT_APPROVERS", "U0000BOB W0000GRID S0000OPS")
    monkeypatch.setenv("VPSBOT_CHANNELS", "C0000OPS,G0000PRIV")
    monkeypatch.setenv("DATABASE_URL", "postgresql:///vpsbot?host=/var/run/postgresql")
    settings = load_settings()
    assert settings.vpsbot_approvers == ("U0000BOB", "W0000GRID", "S0000OPS")
    assert settings.vpsbot_channels == ("C0000OPS", "G0000PRIV")


def test_a_url_of_spaces_is_not_set_and_ids_may_be_one_per_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VPS_API_URL", "   ")
    monkeypatch.setenv("DATABASE_URL", " ")
    monkeypatch.setenv("VPSBOT_APPROVERS", "U0000BOB\nU0000CAROL\n")
    settings = load_settings()
    assert settings.vps_api_url == "https://admin.vps.org/api/v1"
    assert settings.database_url == "sqlite:///vpsbot.db"
    assert settings.vpsbot_approvers == ("U0000BOB", "U0000CAROL")


def test_libpq_sslmode_is_named_with_what_asyncpg_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://vpsbot@db/vpsbot?sslmode=require")
    with pytest.raises(ConfigError, match=r"\?ssl=require rather than \?sslmode="):
        load_settings()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://vpsbot:hunter2@db/vpsbot",
        "postgresql://vpsbot@db/vpsbot?password=hunter2",
        "postgresql://vpsbot@db/vpsbot?sslpassword=hunter2&ssl=require",
    ],
)
def test_a_database_url_is_shown_without_any_password(url: str) -> None:
    assert "hunter2" not in shown(url)
    assert shown(url).startswith("postgresql://vpsbot")
