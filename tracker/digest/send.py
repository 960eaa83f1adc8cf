"""Delivering rendered messages: over SMTP, or into .eml files for a dry run. Both are `Sender`s.

The SMTP password is only ever handed to `smtplib.login`; it never appears in a log line or an error.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Protocol

from tracker.config import Settings
from tracker.errors import ConfigError, TrackerError

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30.0


class DeliveryError(TrackerError):
    """One message could not be delivered; the others still are."""


class Sender(Protocol):
    """Delivers one message; `key` names the delivery (e.g. "subscription-3"). Returns a reference."""

    def send(self, message: EmailMessage, *, key: str) -> str: ...

    def __enter__(self) -> Sender: ...

    def __exit__(self, *exc_info: object) -> None: ...


class SmtpSender:
    """Sends over one SMTP connection (SSL, STARTTLS or plain), opened on first use and reused.

    A failed message closes the connection so the next message starts afresh.
    """

    def __init__(self, settings: Settings, *, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        if settings.smtp_ssl and settings.smtp_starttls:
            raise ConfigError("set only one of TRACKER_SMTP_SSL and TRACKER_SMTP_STARTTLS")
        self._settings = settings
        self._timeout = timeout
        self._connection: smtplib.SMTP | None = None

    @property
    def server(self) -> str:
        return f"{self._settings.smtp_host}:{self._settings.smtp_port}"

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings
        context = ssl.create_default_context()
        connection: smtplib.SMTP
        if settings.smtp_ssl:
            connection = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=self._timeout, context=context
            )
        else:
            connection = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=self._timeout)
        try:
            connection.ehlo()
            if settings.smtp_starttls:
                connection.starttls(context=context)
                connection.ehlo()
            if settings.smtp_user:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                connection.login(settings.smtp_user, password)
        except BaseException:
            _quietly_close(connection)
            raise
        return connection

    def send(self, message: EmailMessage, *, key: str) -> str:
        recipient = str(message["To"])
        try:
            if self._connection is None:
                self._connection = self._connect()
            self._connection.send_message(message)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            if self._connection is not None:
                _quietly_close(self._connection)
                self._connection = None
            raise DeliveryError(
                f"cannot send to {recipient} via {self.server}: {self._reason(exc)}"
            ) from None
        log.info("sent %s to %s via %s", key, recipient, self.server)
        return str(message["Message-ID"] or "")

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            reason = f"authentication failed for user {self._settings.smtp_user} ({exc.smtp_code})"
        elif isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [f"{code} {text.decode(errors='replace')}" for code, text in exc.recipients.values()]
            reason = "recipient refused: " + "; ".join(codes)
        elif isinstance(exc, smtplib.SMTPResponseException):
            reason = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return _scrub(reason, self._settings)

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.quit()
            except (smtplib.SMTPException, OSError):
                _quietly_close(self._connection)
            self._connection = None

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EmlWriter:
    """Writes each message to `<out_dir>/<key>.eml` instead of sending it (for `--dry-run`)."""

    def __init__(self, out_dir: Path) -> None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
        self.out_dir = out_dir

    def send(self, message: EmailMessage, *, key: str) -> str:
        path = self.out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.eml"
        try:
            path.write_bytes(message.as_bytes())
        except OSError as exc:
            raise DeliveryError(f"cannot write {path}: {exc.strerror}") from None
        return str(path)

    def __enter__(self) -> EmlWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def _scrub(text: str, settings: Settings) -> str:
    """Belt and braces: a server echoing the password back must not put it in our output."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    return text.replace(password, "***") if password else text


def _quietly_close(connection: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        connection.close()


class TextPrinter:
    """Writes each message's plain-text part to a stream (the preview of `tracker digest` without --send)."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write

    def send(self, message: EmailMessage, *, key: str) -> str:
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        self._write(f"=== {key}: To {message['To']}\n=== Subject: {message['Subject']}\n\n{text}")
        return key

    def __enter__(self) -> TextPrinter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None
