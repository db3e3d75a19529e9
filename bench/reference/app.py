"""The hand-written reference: what `/dashboard` and `/healthz` cost with nothing but the work.

`make bench` (bench/run.py) serves this app beside the stack, under Gunicorn with the same
workers and threads, and reports the stack's figures as ratios of this one's. It does what
the stack's `/dashboard` does and nothing else: read the session cookie, one Redis GET of
the same msgpack session, the dashboard's People query through the SQLAlchemy ORM, and a
base + child template of the same markup. No extensions, hooks, logs or metrics.

Settings: DATABASE_URL, REDIS_URL (the stack's), SESSION_KEY_PREFIX (default `session:`).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import msgspec
import redis
import sqlalchemy as sa
from flask import Flask, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    """The reference's own mapping of the stack's `people` table."""


class Person(Base):
    """An entry in a user's address book (the columns the dashboard reads)."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int]
    name: Mapped[str]
    email: Mapped[str | None]
    notes: Mapped[str | None]
    created_at: Mapped[datetime]


app = Flask(__name__)
engine = sa.create_engine(os.environ["DATABASE_URL"], pool_size=10)
store = redis.Redis.from_url(os.environ["REDIS_URL"])
PREFIX = os.environ.get("SESSION_KEY_PREFIX", "session:")
PREFS = {"theme": "auto", "language": "en"}


def signed_in() -> dict[str, Any]:
    """Return the session's login data, or answer 401."""
    sid = request.cookies.get("session")
    raw = store.get(PREFIX + sid) if sid else None
    auth = msgspec.msgpack.decode(raw).get("_auth") if raw else None
    if not auth:
        abort(401)
    return dict(auth)


@app.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Say the process serves requests."""
    return jsonify(status="ok")


@app.get("/dashboard")
def dashboard() -> ResponseReturnValue:
    """The stack's dashboard: the user's latest five people and their count."""
    auth = signed_in()
    with Session(engine) as db:
        rows = db.execute(
            sa.select(Person, sa.func.count().over().label("total"))
            .where(Person.owner_id == auth["uid"])
            .order_by(Person.created_at.desc(), Person.id.desc())
            .limit(5)
        ).all()
    count = rows[0].total if rows else 0
    latest = [row.Person for row in rows]
    return render_template(
        "dashboard.html", user=auth["username"], prefs=PREFS, people_count=count, latest=latest
    )
