"""Languages: Flask-Babel with gettext catalogues in web/app/translations (English is the
source language, French is complete).

The language of a request is the visitor's preference cookie, else the best match of their
Accept-Language (preferences/cookies.py). Templates use `_()` / `{% trans %}`, Python code
`gettext` / `ngettext` (plural forms from the catalogue). Mail is rendered in the request,
so it is written in the language of the person who asked for it.

Update the catalogues after changing a string: `make translations` (pybabel extract, update,
then compile; the .po and .mo files are committed, and a test checks they agree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, g
from flask_babel import get_locale, get_translations

from .extensions import babel

LANGUAGES = {"en": "English", "fr": "Français"}
TRANSLATIONS = Path(__file__).with_name("translations")


def N_(message: str) -> str:
    """Mark `message` for extraction; it is translated where a template looks it up."""
    return message


# Words templates translate through a variable (`_(prefs.theme.title())`), which pybabel
# cannot see there.
THEME_NAMES = (N_("Light"), N_("Dark"))


def select_locale() -> str:
    """Return the request's language (Flask-Babel asks once per request)."""
    from .preferences.cookies import current_preferences

    return current_preferences().language


def init_app(app: Flask) -> None:
    """Bind Flask-Babel: its `_`, `gettext` and `ngettext` reach every template."""
    babel.init_app(
        app,
        default_locale="en",
        default_translation_directories=str(TRANSLATIONS),
        locale_selector=select_locale,
    )
    # Flask-Babel's template callables find the domain, the request's state, the locale
    # and the catalogue again for every string (15 on the dashboard: an eighth of its
    # time). These find the catalogue once per locale per request: `force_locale` (mail
    # in the recipient's language) swaps the locale object, which makes them look again.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
    )


def _translations() -> Any:
    """Return the catalogue of the current locale, looked up once per locale per request."""
    locale = get_locale()
    cached = g.get("template_translations")
    if cached is None or cached[0] is not locale:
        cached = g.template_translations = (locale, get_translations())
    return cached[1]
