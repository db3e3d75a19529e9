"""Choose a theme and a language (stored in cookies)."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import RadioField, SubmitField
from wtforms.fields.choices import SelectChoice

from ..i18n import LANGUAGES
from .cookies import THEMES, Preferences, current_preferences, store_preferences

bp = Blueprint("preferences", __name__)


class PreferencesForm(FlaskForm):
    """Theme and language."""

    theme = RadioField("Theme", choices=[SelectChoice(t, t.title()) for t in THEMES])
    language = RadioField("Language", choices=[SelectChoice(k, v) for k, v in LANGUAGES.items()])
    submit = SubmitField("Save")


@bp.route("/preferences", methods=["GET", "POST"])
def preferences() -> ResponseReturnValue:
    """Show and save the preferences; every page reads them from the cookies."""
    current = current_preferences()
    form = PreferencesForm(data={"theme": current.theme, "language": current.language})
    if form.validate_on_submit():
        response = make_response(redirect(url_for("preferences.preferences")))
        store_preferences(response, Preferences(form.theme.data, form.language.data))
        flash(_("Preferences saved."), "success")
        return response
    status = 422 if form.errors else 200
    return render_template("preferences/preferences.html", form=form), status
