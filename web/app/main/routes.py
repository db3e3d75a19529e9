"""Home page, public profiles and the dashboard."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from .. import reads
from ..extensions import db
from ..models import User

bp = Blueprint("main", __name__)

DASHBOARD_PEOPLE = 5


@bp.get("/")
def index() -> ResponseReturnValue:
    """Show the home page."""
    return render_template("main/index.html")


@bp.get("/user/<name>")
def profile(name: str) -> ResponseReturnValue:
    """Show a registered user's public profile (a friendly 404 for unknown names)."""
    user = db.first_or_404(
        User.named(name[:64]),
        description=f"There is no user called “{name[:64]}”.",
    )
    return render_template("main/profile.html", user=user)


@bp.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    """Welcome the user, with their preferences and a summary of their people."""
    # One query (app/reads.py): the window count sees every row of the user's before LIMIT
    # keeps the latest.
    count, latest = reads.latest_people(current_user.id, DASHBOARD_PEOPLE)
    return render_template("main/dashboard.html", people_count=count, latest=latest)
