"""Settings: one frozen object, read from TRACKER_* environment variables once and passed down.

No other module reads os.environ. CLI flags override individual fields through `load_settings(**overrides)`.

Validation is pydantic's: the model is built from `Settings`' own fields (`_model`), and every value it is
not certain to read exactly as pydantic would (a password, a negative rate, "yes" for a flag, any other
type) goes through it, errors included. Plain values (text, digits, "true"/"false", a known time zone) are
read here directly (`_read_plainly`), because importing pydantic and building the model cost ~0.1 s of
every command, a third of `tracker status`. (pydantic-settings, used before, cost as much again.)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from tracker.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel, SecretStr

DEFAULT_DATABASE_URL = "sqlite:///data/trials.db"
DEFAULT_CTGOV_BASE_URL = "https://clinicaltrials.gov/api/v2"
DEFAULT_CTGOV_HISTORY_URL = "https://clinicaltrials.gov/api/int"
DEFAULT_CTIS_BASE_URL = "https://euclinicaltrials.eu/ctis-public-api"
DEFAULT_QUERY = "multiple sclerosis"

ENV_PREFIX = "TRACKER_"


def _bounded(default: float, **bounds: float) -> Any:
    """A numeric field with pydantic's bounds (ge, gt, le), kept in the field's metadata."""
    return field(default=default, metadata=bounds)


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    ctgov_base_url: str = DEFAULT_CTGOV_BASE_URL
    # The internal history API; unset, it sits beside the API v2 base URL (…/api/v2 → …/api/int).
    ctgov_history_url: str | None = None
    # The EU Clinical Trials Information System's public API (undocumented; ctis API_NOTES). Checked like
    # the ClinicalTrials.gov base URL, when a client is built on it.
    ctis_base_url: str = DEFAULT_CTIS_BASE_URL
    query: str = DEFAULT_QUERY
    # The registry publishes no limit; robots.txt asks for one request a second. 0 switches the cap off.
    requests_per_second: float = _bounded(1.0, ge=0)
    request_timeout: float = _bounded(90.0, gt=0)
    max_retries: int = _bounded(5, ge=0)
    page_size: int = _bounded(1000, ge=1, le=1000)
    # Worker processes for `sync`, `import`, `classify --all` and a large `export`: 0 = one per core (at
    # most 4), 1 = this process alone.
    workers: int = _bounded(0, ge=0, le=64)

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "ms-trial-tracker@localhost"
    digest_max_per_section: int = _bounded(50, ge=1)
    digest_send_empty: bool = False
    public_url: str | None = None

    # The daily scheduled sync also refreshes the registry history of the trials it moved.
    schedule_history: bool = True
    # Which registries the daily scheduled sync reads: ctgov, ctis or all.
    schedule_registry: str = "all"

    sync_cron: str = "0 6 * * *"
    digest_cron: str = "0 7 * * mon"
    timezone: str = "UTC"  # an IANA name, checked by `_known_time_zone`

    def as_dict(self) -> dict[str, Any]:
        """Every field's value (a password stays a SecretStr)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}


FIELD_NAMES = tuple(item.name for item in dataclasses.fields(Settings))


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
        if key.startswith(prefix) and key[len(prefix) :] in FIELD_NAMES:
            found[key[len(prefix) :]] = value
    return found


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with non-None overrides (CLI flags) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    values = {key: value for key, value in {**_environment(), **given}.items() if key in FIELD_NAMES}
    plain = _read_plainly(values)
    return Settings(**plain) if plain is not None else _validated(values)


# ---------------------------------------------------------------------------------------------------------
# Values read without pydantic: only those it reads the same way (anything else returns None)

_DIGITS = re.compile(r"0|[1-9][0-9]{0,15}")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,15})?")
_FLAGS = {"true": True, "false": False, "1": True, "0": False}
_KINDS = {item.name: str(item.type) for item in dataclasses.fields(Settings)}
_BOUNDS = {item.name: dict(item.metadata) for item in dataclasses.fields(Settings)}


def _read_plainly(values: dict[str, Any]) -> dict[str, Any] | None:
    """The values as pydantic would validate them, or None when one of them needs pydantic."""
    read: dict[str, Any] = {}
    for name, value in values.items():
        plain = _plain_value(_KINDS[name], value)
        if plain is None or not _within(plain, _BOUNDS[name]):
            return None
        read[name] = plain
    if "timezone" in read and not _known_zone(read["timezone"]):
        return None
    return read


def _plain_value(kind: str, value: Any) -> Any:
    if kind in ("str", "str | None"):
        return value if type(value) is str else None
    if kind == "bool":
        if type(value) is bool:
            return value
        return _FLAGS.get(value) if type(value) is str else None
    if kind == "int":
        if type(value) is int:
            return value
        return int(value) if type(value) is str and _DIGITS.fullmatch(value) else None
    if kind == "float":
        if type(value) in (int, float) and math.isfinite(value) and abs(value) < 2**53:
            return float(value)
        return float(value) if type(value) is str and _DECIMAL.fullmatch(value) else None
    return None  # the password: pydantic's SecretStr


def _within(value: Any, bounds: dict[str, float]) -> bool:
    ge, gt, le = bounds.get("ge"), bounds.get("gt"), bounds.get("le")
    return (ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)


def _known_zone(value: str) -> bool:
    try:
        _known_time_zone(value)
    except ValueError:
        return False
    return True


def _known_time_zone(value: str) -> str:
    # Checked here so a bad zone is blamed on TRACKER_TIMEZONE, not on whichever cron uses it first.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/London)") from None
    return value


# ---------------------------------------------------------------------------------------------------------
# pydantic: everything else, and every error message


def _validated(values: dict[str, Any]) -> Settings:
    from pydantic import ValidationError

    try:
        model = _model()(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise SettingError(name, reason) from None
    return Settings(**{name: getattr(model, name) for name in FIELD_NAMES})


@cache
def _model() -> type[BaseModel]:
    """The pydantic model of `Settings`: the same fields, types, defaults and bounds."""
    from typing import get_type_hints

    from pydantic import ConfigDict, Field, SecretStr, create_model, field_validator

    hints = get_type_hints(Settings, {**globals(), "SecretStr": SecretStr})
    fields: dict[str, Any] = {
        item.name: (hints[item.name], Field(default=item.default, **item.metadata))
        for item in dataclasses.fields(Settings)
    }
    check_zone = field_validator("timezone")(classmethod(lambda _cls, value: _known_time_zone(value)))
    return create_model(  # type: ignore[no-any-return, call-overload]
        "Settings",
        # validate_default as pydantic-settings had it: a default is checked like a given value
        __config__=ConfigDict(frozen=True, extra="ignore", validate_default=True),
        __validators__={"_known_time_zone": check_zone},
        **fields,
    )
