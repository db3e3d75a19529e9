"""Forms of the people blueprint."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional


class PersonForm(FlaskForm):
    """Name, optional email and notes of one person."""

    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    email = EmailField(
        "Email", validators=[Optional(), Length(max=254), Email(check_deliverability=False)]
    )
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)])
    submit = SubmitField("Save")


class DeleteForm(FlaskForm):
    """An empty form whose CSRF token guards a delete."""

    submit = SubmitField("Delete")
