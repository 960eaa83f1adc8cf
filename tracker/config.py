"""Settings: one frozen object, read from TRACKER_* environment variables once and passed down.

No other module reads os.environ. CLI flags override individual fields through `load_settings(**overrides)`.
The variables are read here (`_environment`) and validated by a plain pydantic model: pydantic-settings did
the same for these flat fields but its import (asyncio, cloud secret sources) cost ~0.1 s of every command.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from tracker.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///data/trials.db"
DEFAULT_CTGOV_BASE_URL = "https://clinicaltrials.gov/api/v2"
DEFAULT_CTGOV_HISTORY_URL = "https://clinicaltrials.gov/api/int"
DEFAULT_QUERY = "multiple sclerosis"


ENV_PREFIX = "TRACKER_"


class Settings(BaseModel):
    # validate_default as pydantic-settings had it: a default is checked like a given value.
    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)

    database_url: str = DEFAULT_DATABASE_URL
    ctgov_base_url: str = DEFAULT_CTGOV_BASE_URL
    # The internal history API; unset, it sits beside the API v2 base URL (…/api/v2 → …/api/int).
    ctgov_history_url: str | None = None
    query: str = DEFAULT_QUERY
    # The registry publishes no limit; robots.txt asks for one request a second. 0 switches the cap off.
    requests_per_second: float = Field(default=1.0, ge=0)
    request_timeout: float = Field(default=90.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    page_size: int = Field(default=1000, ge=1, le=1000)

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "ms-trial-tracker@localhost"
    digest_max_per_section: int = Field(default=50, ge=1)
    digest_send_empty: bool = False
    public_url: str | None = None

    # The daily scheduled sync also refreshes the registry history of the trials it moved.
    schedule_history: bool = True

    sync_cron: str = "0 6 * * *"
    digest_cron: str = "0 7 * * mon"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        # Checked here so a bad zone is blamed on TRACKER_TIMEZONE, not on whichever cron uses it first.
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/London)"
            ) from None
        return value


class SettingError(ConfigError):
    """One setting is invalid; `field` names it, so a CLI flag that set it can be named instead."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid setting TRACKER_{field.upper()}: {reason}")
        self.field = field
        self.reason = reason


def history_base_url(settings: Settings) -> str:
    """TRACKER_CTGOV_HISTORY_URL, or the internal API beside the configured API v2 base URL."""
    if settings.ctgov_history_url:
        return settings.ctgov_history_url
    base = settings.ctgov_base_url.strip().rstrip("/")
    if base.endswith("/v2"):
        return base[: -len("/v2")] + "/int"
    return DEFAULT_CTGOV_HISTORY_URL


def _environment() -> dict[str, str]:
    """The TRACKER_* variables that name a setting, keyed by field; names match in any case, as they did
    under pydantic-settings (`tracker_query` sets `query`)."""
    prefix = ENV_PREFIX.lower()
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        key = name.lower()
        if key.startswith(prefix) and key[len(prefix) :] in Settings.model_fields:
            found[key[len(prefix) :]] = value
    return found


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with non-None overrides (CLI flags) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**{**_environment(), **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise SettingError(field, reason) from None
