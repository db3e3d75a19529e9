"""Display preferences kept in plain cookies: not secret, so not in the session."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request
from flask.wrappers import Response

from ..i18n import LANGUAGES

THEMES = ("light", "dark")
MAX_AGE = 365 * 24 * 3600


@dataclass(frozen=True)
class Preferences:
    """The visitor's theme and language."""

    theme: str = "light"
    language: str = "en"


def current_preferences() -> Preferences:
    """Read the preferences from the request's cookies, ignoring unknown values."""
    theme = request.cookies.get("theme", "")
    language = request.cookies.get("lang", "")
    if not language:
        language = request.accept_languages.best_match(list(LANGUAGES)) or "en"
    return Preferences(
        theme=theme if theme in THEMES else "light",
        language=language if language in LANGUAGES else "en",
    )


def store_preferences(response: Response, prefs: Preferences) -> None:
    """Set the preference cookies on `response` for a year."""
    for name, value in (("theme", prefs.theme), ("lang", prefs.language)):
        response.set_cookie(
            name,
            value,
            max_age=MAX_AGE,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
        )
