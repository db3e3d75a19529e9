"""Translations: the French catalogue covers every string the code marks, the compiled
catalogue is the committed source's, and pages, flashes (plurals) and mail speak French."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from app import jobs
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from helpers import FIREFOX, SAFARI, Auth

WEB = Path(__file__).resolve().parents[2] / "web"
CATALOGUE = WEB / "app" / "translations" / "fr" / "LC_MESSAGES"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHODS = [
    ("app/**.py", "python"),
    ("app/templates/**.html", "jinja2.ext:babel_extract"),
    ("app/templates/**.txt", "jinja2.ext:babel_extract"),
]


def french():
    with (CATALOGUE / "messages.po").open("rb") as f:
        return read_po(f)


def test_every_marked_string_has_a_french_translation():
    """Fails when a string is added or changed without `make translations` and a translation."""
    marked = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(str(WEB), METHODS, keywords=KEYWORDS)
    }
    catalogue = french()
    translated = {
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalogue
        if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string)
    }
    assert marked - translated == set()
    assert len(marked) > 50


def test_the_compiled_catalogue_is_the_committed_source_s():
    def messages(catalogue):
        return {str(m.id): str(m.string) for m in catalogue if m.id}

    with (CATALOGUE / "messages.mo").open("rb") as f:
        compiled = messages(read_mo(f))
    fresh = BytesIO()
    write_mo(fresh, french())
    fresh.seek(0)
    assert compiled == messages(read_mo(fresh))


def test_pages_and_flashes_speak_the_visitor_s_language_with_plural_forms(make_client):
    laptop, phone, tablet = make_client(FIREFOX), make_client(SAFARI), make_client()
    Auth(laptop).signed_in("alice")
    Auth(phone).login("alice")
    Auth(tablet).login("alice")
    laptop.set_cookie("lang", "fr", domain="localhost")
    assert "Accueil" in laptop.get("/").get_data(as_text=True)
    ended = laptop.post_form("/account/sessions/end-others", {}, form_page="/account")
    page = laptop.get(ended.headers["Location"]).get_data(as_text=True)
    assert "2 autres sessions fermées." in page
    Auth(phone).login("alice")
    ended = laptop.post_form("/account/sessions/end-others", {}, form_page="/account")
    assert "1 autre session fermée." in laptop.get(ended.headers["Location"]).get_data(True)


def test_mail_is_written_in_the_language_of_whoever_asked(app, client, outbox):
    client.set_cookie("lang", "fr", domain="localhost")
    Auth(client).register("alice")
    with app.app_context():
        jobs.work(burst=True)
    [message] = outbox.to("alice@example.com")
    assert message["Subject"] == "Vérifiez votre adresse e-mail pour Flask stack"
    text = message.get_body(("plain",)).get_content()
    assert "Bonjour alice," in text and "pendant 24 heures" in text
