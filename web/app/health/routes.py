"""Liveness and readiness probes."""

from __future__ import annotations

import os

from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis import RedisError
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

from ..extensions import db, limiter

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz() -> ResponseReturnValue:
    """Say the process serves requests; touches neither PostgreSQL nor Redis."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz() -> ResponseReturnValue:
    """Say whether this replica should get traffic; 503 naming what is not ready.

    Not ready while draining (gunicorn got SIGTERM), while PostgreSQL or Redis does not
    answer, or while the database is behind the migrations this image carries.
    """
    checks = {"postgres": "ok", "redis": "ok", "schema": schema_state()}
    if checks["schema"] == "unknown":
        checks["postgres"] = "unavailable"
    try:
        current_app.extensions["redis"].ping()
    except RedisError:
        checks["redis"] = "unavailable"
    draining = draining_now()
    ready = not draining and all(v == "ok" for v in checks.values())
    status = "ready" if ready else "draining" if draining else "unavailable"
    return jsonify(status=status, checks=checks), 200 if ready else 503


def draining_now() -> bool:
    """Return whether gunicorn is draining this replica (it creates DRAIN_FILE on SIGTERM)."""
    flag = current_app.config["DRAIN_FILE"]
    return bool(flag) and os.path.exists(flag)


def schema_state() -> str:
    """Compare the database's Alembic revision with this image's head.

    "ok" at the head, or ahead of it (a newer image migrated it: expand/contract keeps the
    old code working, so old replicas stay ready during a deploy); "behind" when the image
    carries migrations the database lacks; "unknown" when PostgreSQL does not answer.
    """
    known, heads = image_revisions()
    try:
        current = set(db.session.scalars(db.text("SELECT version_num FROM alembic_version")))
    except ProgrammingError:  # no alembic_version table: never migrated
        db.session.rollback()
        return "behind"
    except SQLAlchemyError:
        db.session.rollback()
        return "unknown"
    if current - known:
        return "ok"  # a revision this image does not know: the database is ahead
    return "ok" if current == heads else "behind"


def image_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """Return every migration this image carries and its heads, read once per process."""
    revisions = current_app.extensions.get("migration_revisions")
    if revisions is None:
        script = ScriptDirectory(current_app.extensions["migrate"].directory)
        known = frozenset(rev.revision for rev in script.walk_revisions())
        revisions = (known, frozenset(script.get_heads()))
        current_app.extensions["migration_revisions"] = revisions
    return revisions
