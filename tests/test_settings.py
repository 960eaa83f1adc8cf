"""Settings read without pydantic agree with pydantic: a value is read plainly only when pydantic would
accept it and give the same value; everything else, errors included, is pydantic's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracker.config import FIELD_NAMES, SettingError, Settings, _model, _read_plainly, load_settings

VALUES: tuple[object, ...] = (
    "", "0", "1", "-1", "1.5", "0.25", "007", "1e3", "inf", "nan", " 2", "2 ", "1_000", "١٢",
    "true", "false", "True", "FALSE", "yes", "no", "on", "t", "abc", "50", "1000", "1001",
    "UTC", "Europe/London", "Mars/Base", "../etc", 0, 1, 25, 1.5, -1.0, 0.0, True, False, 2**60, None,
)  # fmt: skip


@pytest.mark.parametrize("name", [name for name in FIELD_NAMES if name != "smtp_password"])
def test_a_value_read_plainly_is_the_value_pydantic_gives(name: str) -> None:
    model = _model()
    for value in VALUES:
        plain = _read_plainly({name: value})
        if plain is None:
            continue
        validated = getattr(model(**{name: value}), name)  # raises if pydantic would refuse it
        assert validated == plain[name] and type(validated) is type(plain[name]), (name, value)


def test_defaults_are_the_models() -> None:
    model = _model()()
    assert Settings().as_dict() == {name: getattr(model, name) for name in FIELD_NAMES}


def test_a_password_and_unusual_values_go_through_pydantic() -> None:
    settings = load_settings(smtp_password="s3cret", smtp_starttls="yes", page_size=" 20")
    assert settings.smtp_password is not None and settings.smtp_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert (settings.smtp_starttls, settings.page_size) == (True, 20)
    with pytest.raises(SettingError, match="TRACKER_PAGE_SIZE: Input should be less than or equal to 1000"):
        load_settings(page_size="1001")


def test_plain_settings_import_no_pydantic() -> None:
    code = (
        "import sys; from tracker.config import load_settings; load_settings(requests_per_second=0.0); "
        "print('pydantic' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={"PATH": "/usr/bin:/bin", "TRACKER_QUERY": "multiple sclerosis"},
        check=True,
    )
    assert shown.stdout.strip() == "False"
