"""Mail: queued by the request, rendered and sent by the worker over SMTP.

`send(to, template, **context)` queues one job (one Redis round trip) with plain values and
the request's language; the `worker` service renders `templates/mail/<template>.txt` and
`.html` (the subject is the text's first line, "Subject: ...") in that language and sends
the message (`deliver`). A request never renders or sends mail, so asking for a reset link
costs the same whether or not a message follows. Links are made in the request from
SITE_URL, never from the request's Host.

Settings: SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD(_FILE), SMTP_SECURITY (starttls, tls
or none), MAIL_FROM, SITE_URL, SITE_NAME.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from flask import current_app, render_template, url_for
from flask_babel import force_locale, get_locale

from . import jobs

SUBJECT = "Subject: "


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


def send(to: str, template: str, **context: Any) -> None:
    """Have the worker render `template` for `to` in this request's language and send it.

    `context` holds plain values (strings, numbers): the job carries them, not objects."""
    language = str(get_locale() or "en")
    jobs.enqueue(deliver, to, template, language, context, description=f"mail: {template}")


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
