"""Mail: queued by the request, rendered and sent by the worker over SMTP.

`send(to, template, **context)` queues one job (one Redis round trip) with plain values and
the request's language; the `worker` service renders `templates/mail/<template>.txt` and
`.html` (the subject is the text's first line, "Subject: ...") in that language and sends
the message (`deliver`). A request never renders or sends mail, so asking for a reset link
costs the same whether or not a message follows. Links are made in the request from
SITE_URL, never from the request's Host.

Settings: SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD(_FILE), SMTP_SECURITY (starttls, tls
or none), MAIL_FROM, SITE_URL, SITE_NAME; the budgets MAIL_LIMIT_RECIPIENT, MAIL_LIMIT_ACCOUNT,
MAIL_LIMIT_TEMPLATE and the queue's bound MAIL_QUEUE_MAX (`send`).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from flask import current_app, render_template, url_for
from flask_babel import force_locale, get_locale
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

from . import jobs
from .models import email_key
from .ratelimits import spend_each

SUBJECT = "Subject: "
TOO_MANY = "Too many messages to this address or account: please try again later."
QUEUE_FULL = "Our mail service is busy: please try again in a few minutes."


def link(endpoint: str, **values: Any) -> str:
    """Return an absolute link on the configured site (SITE_URL), whatever the request's Host."""
    return str(current_app.config["SITE_URL"]).rstrip("/") + url_for(endpoint, **values)


def render(to: str, template: str, **context: Any) -> EmailMessage:
    """Return the message `template` renders for `to` (plain text and HTML)."""
    context = {"site_name": current_app.config["SITE_NAME"], **context}
    text = render_template(f"mail/{template}.txt", **context)
    first, _, body = text.partition("\n")
    assert first.startswith(SUBJECT), f"mail/{template}.txt must start with {SUBJECT!r}"
    message = EmailMessage()
    message["Subject"] = first.removeprefix(SUBJECT).strip()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Message-ID"] = make_msgid(domain=current_app.config["MAIL_FROM"].rpartition("@")[2])
    message.set_content(body.lstrip("\n"))
    message.add_alternative(render_template(f"mail/{template}.html", **context), subtype="html")
    return message


def send(
    to: str, template: str, *, account: int | None = None, required: bool = False, **context: Any
) -> bool:
    """Have the worker render `template` for `to` in this request's language and send it.

    Every message spends one unit of three budgets (MAIL_LIMIT_RECIPIENT per address,
    MAIL_LIMIT_ACCOUNT per `account` it is about, MAIL_LIMIT_TEMPLATE per address and
    template), and the queue holds at most MAIL_QUEUE_MAX messages. Past either, nothing is
    queued: a notice is dropped (False, and a warning in the log); a message that is the
    point of the request (`required`) answers it 429 (a budget) or 503 (the queue full).
    `context` holds plain values (strings, numbers): the job carries them, not objects."""
    config, recipient = current_app.config, email_key(to)
    budgets = [
        (config["MAIL_LIMIT_RECIPIENT"], ("mail-recipient", recipient)),
        (config["MAIL_LIMIT_TEMPLATE"], ("mail-template", template, recipient)),
    ]
    if account is not None:
        budgets.append((config["MAIL_LIMIT_ACCOUNT"], ("mail-account", str(account))))
    if not spend_each(budgets):
        current_app.logger.warning("mail: %s not sent, past a mail budget", template)
        if required:
            raise TooManyRequests(TOO_MANY, retry_after=3600)
        return False
    language = str(get_locale() or "en")
    if not jobs.enqueue(deliver, to, template, language, context, description=f"mail: {template}"):
        current_app.logger.warning("mail: %s not sent, the queue is full", template)
        if required:
            raise ServiceUnavailable(QUEUE_FULL, retry_after=300)
        return False
    return True


def deliver(to: str, template: str, language: str, context: dict[str, Any]) -> None:
    """Render and send one message over SMTP (a job: an exception makes RQ retry it)."""
    config = current_app.config
    with current_app.test_request_context(base_url=config["SITE_URL"]), force_locale(language):
        message = render(to, template, **context)
    security = config["SMTP_SECURITY"]
    tls = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if security == "tls" else smtplib.SMTP
    kwargs: dict[str, Any] = {"context": tls} if security == "tls" else {}
    with smtp_class(config["SMTP_HOST"], config["SMTP_PORT"], timeout=30, **kwargs) as smtp:
        if security == "starttls":
            smtp.starttls(context=tls)
        if config["SMTP_USER"]:
            smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"] or "")
        smtp.send_message(message)
    current_app.logger.info("mail sent: %s", message["Subject"])
