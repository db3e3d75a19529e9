"""Each user's private address book, and its CSV download."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy.engine import Row

from .. import reads
from ..extensions import db
from ..models import Person
from .forms import DeleteForm, PersonForm

bp = Blueprint("people", __name__)


@bp.before_request
@login_required
def require_login() -> None:
    """Every page here belongs to a signed-in user."""


def owned_person_or_404(person_id: int) -> Person:
    """Return the current user's person; someone else's is a 404, as if it did not exist."""
    person = db.session.get(Person, person_id)
    if person is None or person.owner_id != current_user.id:
        abort(404, description="There is no such person in your address book.")
    return person


def owned_people() -> Sequence[Row[Any]]:
    """Return the current user's people, by name (read-only rows: app/reads.py)."""
    return reads.people_by_name(current_user.id)


@bp.get("/people")
def index() -> ResponseReturnValue:
    """List the user's people."""
    return render_template("people/index.html", people=owned_people(), delete_form=DeleteForm())


@bp.route("/people/new", methods=["GET", "POST"])
def create() -> ResponseReturnValue:
    """Add a person."""
    form = PersonForm()
    if form.validate_on_submit():
        person = Person(owner_id=current_user.id)
        form.populate_obj(person)
        person.email = person.email or None
        db.session.add(person)
        db.session.commit()
        flash(_("Added %(name)s.", name=person.name), "success")
        return redirect(url_for("people.index"))
    return render_template("people/form.html", form=form, person=None), 422 if form.errors else 200


@bp.route("/people/<int:person_id>/edit", methods=["GET", "POST"])
def edit(person_id: int) -> ResponseReturnValue:
    """Change a person."""
    person = owned_person_or_404(person_id)
    form = PersonForm(obj=person)
    if form.validate_on_submit():
        form.populate_obj(person)
        person.email = person.email or None
        db.session.commit()
        flash(_("Saved %(name)s.", name=person.name), "success")
        return redirect(url_for("people.index"))
    status = 422 if form.errors else 200
    return render_template("people/form.html", form=form, person=person), status


@bp.post("/people/<int:person_id>/delete")
def delete(person_id: int) -> ResponseReturnValue:
    """Delete a person (CSRFProtect has checked the form's token)."""
    person = owned_person_or_404(person_id)
    db.session.delete(person)
    db.session.commit()
    flash(_("Deleted %(name)s.", name=person.name), "success")
    return redirect(url_for("people.index"))


def csv_cell(value: str | None) -> str:
    """Neutralise spreadsheet formulas (=, +, -, @) in a CSV cell."""
    value = value or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/download")
def download() -> ResponseReturnValue:
    """Send the user's people as a CSV attachment (make_response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "email", "notes"])
    for person in owned_people():
        writer.writerow([csv_cell(person.name), csv_cell(person.email), csv_cell(person.notes)])
    response = make_response(buffer.getvalue())
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = "attachment; filename=people.csv"
    response.headers["Cache-Control"] = "no-store"
    return response
