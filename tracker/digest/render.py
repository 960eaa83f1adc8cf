"""Rendering: a `DigestContent` into an HTML body (inline CSS), a plain-text body and a MIME message.

Templates live in `tracker/digest/templates/`. Autoescaping is on for the HTML template, so registry text
(titles, sponsors, reasons for stopping) can never inject markup; the plain-text template is not escaped.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from tracker.digest.build import DigestContent


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("tracker.digest", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def period_text(content: DigestContent) -> str:
    return f"Changes detected {_day(content.period_start)} to {_day(content.period_end)} (UTC)"


def period_range(start: datetime, end: datetime) -> str:
    """A range people read at a glance: "1–8 Sep 2025", "25 Nov – 1 Dec 2026", "28 Dec 2025 – 3 Jan 2026".

    An end at midnight is exclusive (a `--until` day includes that whole day), so it names the day before.
    """
    first = start.date()
    last = (end - timedelta(microseconds=1)).date() if end.time() == time.min and end > start else end.date()
    last = max(last, first)

    def day(moment: date, *parts: str) -> str:
        return " ".join([str(moment.day), *(moment.strftime(part) for part in parts)])

    if first == last:
        return day(last, "%b", "%Y")
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{day(last, '%b', '%Y')}"
    if first.year == last.year:
        return f"{day(first, '%b')} – {day(last, '%b', '%Y')}"
    return f"{day(first, '%b', '%Y')} – {day(last, '%b', '%Y')}"


def subject(content: DigestContent) -> str:
    """Short, so mail clients show it whole: "MS trials digest (Name): 12 trials changed, 1–8 Sep 2025"."""
    name = f" ({content.subscription_name})" if content.subscription_name else ""
    trials = f"{content.trial_count} trial{'' if content.trial_count == 1 else 's'} changed"
    return f"MS trials digest{name}: {trials}, {period_range(content.period_start, content.period_end)}"


def render_html(content: DigestContent) -> str:
    template = _environment().get_template("digest.html")
    return template.render(digest=content, subject=subject(content), period=period_text(content))


def render_text(content: DigestContent) -> str:
    template = _environment().get_template("digest.txt")
    return template.render(digest=content, subject=subject(content), period=period_text(content))


def render_message(content: DigestContent, *, sender: str) -> EmailMessage:
    """A multipart/alternative message: the plain-text part first, the HTML part preferred by mail clients."""
    message = EmailMessage()
    message["Subject"] = subject(content)
    message["From"] = sender
    message["To"] = content.recipient
    message["Date"] = formatdate(localtime=False, usegmt=True)
    address = parseaddr(sender)[1] or sender
    domain = address.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # No List-Unsubscribe header: nothing reads mail sent to the digest's address, so a button that mails
    # it would promise what does not happen. The footer says who can remove the subscription.
    message.set_content(render_text(content))
    message.add_alternative(render_html(content), subtype="html")
    return message
