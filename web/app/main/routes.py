"""Home page, public profiles and the dashboard."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from ..extensions import db
from ..models import Person, User, username_key

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
        db.select(User).where(User.username_key == username_key(name[:64])),
        description=f"There is no user called “{name[:64]}”.",
    )
    return render_template("main/profile.html", user=user)


@bp.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    """Welcome the user, with their preferences and a summary of their people."""
    owned = Person.owner_id == current_user.id
    count = db.session.scalar(db.select(db.func.count()).select_from(Person).where(owned))
    latest = db.session.scalars(
        db.select(Person).where(owned).order_by(Person.created_at.desc()).limit(DASHBOARD_PEOPLE)
    )
    return render_template("main/dashboard.html", people_count=count, latest=list(latest))
