"""The hot reads of signed-in pages: prebuilt Core statements, run without a transaction.

Every signed-in user loads the dashboard and the people list, and each is one SELECT. Through
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
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.engine import Engine, Row

from .extensions import db
from .models import Person

_people = Person.__table__.c

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
