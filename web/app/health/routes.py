"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

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
    """Say whether PostgreSQL and Redis both answer (503 naming the one that does not)."""
    checks = {"postgres": "ok", "redis": "ok"}
    try:
        db.session.execute(db.text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        checks["postgres"] = "unavailable"
    try:
        current_app.extensions["redis"].ping()
    except RedisError:
        checks["redis"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503
