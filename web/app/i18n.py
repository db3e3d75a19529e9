"""A small catalogue for the interface's own words, in English and French.

Two languages and a few dozen phrases do not justify a gettext tool chain; a project that grows
more languages should move to Flask-Babel, keeping these English strings as the message ids.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = {"en": "English", "fr": "Français"}

FRENCH = {
    "Home": "Accueil",
    "Dashboard": "Tableau de bord",
    "People": "Contacts",
    "Preferences": "Préférences",
    "Account": "Compte",
    "Log in": "Se connecter",
    "Log out": "Se déconnecter",
    "Register": "Créer un compte",
    "Welcome": "Bienvenue",
    "Theme": "Thème",
    "Language": "Langue",
    "Light": "Clair",
    "Dark": "Sombre",
    "Save": "Enregistrer",
    "Your people": "Vos contacts",
    "Add a person": "Ajouter un contact",
    "Download as CSV": "Télécharger en CSV",
    "Sessions": "Sessions",
    "Recent activity": "Activité récente",
    "Change password": "Changer le mot de passe",
    "Delete account": "Supprimer le compte",
    "A production-grade Flask stack": "Une pile Flask prête pour la production",
}
CATALOGUES = {"fr": FRENCH}


def translator(language: str) -> Callable[[str], str]:
    """Return the `_` function templates use for `language` (English is the fallback)."""
    catalogue = CATALOGUES.get(language, {})
    return lambda text: catalogue.get(text, text)
