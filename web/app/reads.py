"""The hot reads of signed-in pages: prebuilt Core statements, run without a transaction.

Every signed-in user loads the dashboard and the people list (one SELECT each) and the
account page (three, on one connection). Through
the ORM session each one rebuilt its statement (construction and cache-key work on every
request) and ran inside BEGIN ... ROLLBACK (two more round trips, and PostgreSQL's CPU for
them). Here each statement is built once, at import, with its parameters bound by name, so
SQLAlchemy reuses its memoized cache key and compiled form; it runs on a pooled connection in
autocommit mode (psycopg sends the SELECT alone). A single SELECT sees one consistent
snapshot by itself: the transaction added nothing. Writes, and every other read, keep the
ORM session.

Rows come back as read-only named tuples (`row.name`, `row.email`...): what templates need.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.engine import Engine, Row

from .extensions import db
from .models import AuthEvent, Passkey, Person, RememberedDevice, User

_people = Person.__table__.c
_users = User.__table__.c
_devices = RememberedDevice.__table__.c
_events = AuthEvent.__table__.c
_passkeys = Passkey.__table__.c

# The dashboard: the latest people of an owner, and (window count, before LIMIT) how many.
LATEST_PEOPLE = (
    sa.select(_people.id, _people.name, _people.email, sa.func.count().over().label("total"))
    .where(_people.owner_id == sa.bindparam("owner_id"))
    .order_by(_people.created_at.desc(), _people.id.desc())
    .limit(sa.bindparam("limit"))
)
# The people list (and its CSV download): every person of an owner, by name.
PEOPLE_BY_NAME = (
    sa.select(_people.id, _people.name, _people.email, _people.notes)
    .where(_people.owner_id == sa.bindparam("owner_id"))
    .order_by(_people.name, _people.id)
)


# The account page: the address, and whether a second factor protects the account.
ACCOUNT = sa.select(
    _users.email,
    _users.email_verified_at,
    (_users.totp_enabled_at.is_not(None) | sa.exists().where(_passkeys.user_id == _users.id)).label(
        "has_factor"
    ),
).where(_users.id == sa.bindparam("user_id"))
# ...its remembered devices that have not expired, last used first...
LIVE_DEVICES = (
    sa.select(_devices.id, _devices.label, _devices.ip, _devices.created_at, _devices.last_used_at)
    .where(_devices.user_id == sa.bindparam("user_id"), _devices.expires_at > sa.bindparam("now"))
    .order_by(_devices.last_used_at.desc())
)
# ...and its latest auth events ("recent activity").
RECENT_EVENTS = (
    sa.select(_events.event, _events.ip, _events.device, _events.created_at)
    .where(_events.user_id == sa.bindparam("user_id"))
    .order_by(_events.created_at.desc(), _events.id.desc())
    .limit(sa.bindparam("limit"))
)


def engine() -> Engine:
    """Return the app's engine in autocommit mode (same pool, no BEGIN/ROLLBACK)."""
    extensions = current_app.extensions
    reads: Engine | None = extensions.get("reads_engine")
    if reads is None:
        reads = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        extensions["reads_engine"] = reads
    return reads


def run(statement: sa.Select[tuple[object, ...]], **params: object) -> Sequence[Row[Any]]:
    """Return every row of a prebuilt `statement` with `params`, outside any transaction."""
    with engine().connect() as conn:
        return conn.execute(statement, params).all()


def latest_people(owner_id: int, limit: int) -> tuple[int, Sequence[Row[Any]]]:
    """Return how many people `owner_id` has, and the latest `limit` of them."""
    rows = run(LATEST_PEOPLE, owner_id=owner_id, limit=limit)
    return (rows[0].total if rows else 0), rows


def people_by_name(owner_id: int) -> Sequence[Row[Any]]:
    """Return every person of `owner_id`, by name."""
    return run(PEOPLE_BY_NAME, owner_id=owner_id)


def account_page(
    user_id: int, now: datetime, events: int
) -> tuple[Row[Any] | None, Sequence[Row[Any]], Sequence[Row[Any]]]:
    """Return the account page's account row (None if the account is gone), its live
    remembered devices and its latest `events` auth events: one connection, no transaction."""
    with engine().connect() as conn:
        account = conn.execute(ACCOUNT, {"user_id": user_id}).first()
        devices = conn.execute(LIVE_DEVICES, {"user_id": user_id, "now": now}).all()
        recent = conn.execute(RECENT_EVENTS, {"user_id": user_id, "limit": events}).all()
    return account, devices, recent
