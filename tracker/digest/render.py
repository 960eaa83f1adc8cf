"""Rendering: a `DigestContent` into an HTML body (inline CSS), a plain-text body and a MIME message.

Templates live in `tracker/digest/templates/`. Autoescaping is on for the HTML template, so registry text
(titles, sponsors, reasons for stopping) can never inject markup; the plain-text template is not escaped.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from functools import cache
from urllib.parse import quote

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


def subject(content: DigestContent) -> str:
    """Short, so mail clients show it whole: "MS trials digest (Name): 12 trials changed, 01–08 Sep 2025"."""
    name = f" ({content.subscription_name})" if content.subscription_name else ""
    trials = f"{content.trial_count} trial{'' if content.trial_count == 1 else 's'} changed"
    start, end = content.period_start, content.period_end
    if (start.year, start.month) == (end.year, end.month):
        period = f"{start:%d}–{end:%d %b %Y}"
    elif start.year == end.year:
        period = f"{start:%d %b}–{end:%d %b %Y}"
    else:
        period = f"{start:%d %b %Y}–{end:%d %b %Y}"
    return f"MS trials digest{name}: {trials}, {period}"


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
    if content.subscription_id is not None:
        # Lets mail clients offer an unsubscribe button; the request reaches the digest's sender address.
        topic = quote(f"unsubscribe {content.subscription_id}")
        message["List-Unsubscribe"] = f"<mailto:{address}?subject={topic}>"
    message.set_content(render_text(content))
    message.add_alternative(render_html(content), subtype="html")
    return message
