"""Replace pooled PostgreSQL connections that died while idle, without a ping per request.

SQLAlchemy's `pool_pre_ping` costs a round trip (and a transaction) on every checkout. A
connection in steady use is known to be alive; one that sat idle in the pool may have been
dropped meanwhile (PostgreSQL restarted, failed over, or closed it). So a connection that
was idle for DB_PING_AFTER_IDLE seconds or more is pinged on checkout, and replaced if it is
dead: the first request after PostgreSQL returns works, and a busy replica pays nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import DisconnectionError

from .config import now
from .extensions import db

IDLE_SINCE = "idle_since"


def register(app: Flask) -> None:
    """Ping connections idle for DB_PING_AFTER_IDLE seconds when they are checked out."""
    with app.app_context():
        engine = db.engine
    threshold = app.config["DB_PING_AFTER_IDLE"]

    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[IDLE_SINCE] = now(app.config)

    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop(IDLE_SINCE, None)
        if idle_since is None or now(app.config) - idle_since < threshold:
            return  # new, or in steady use
        try:
            dbapi_connection.execute("SELECT 1")
            dbapi_connection.rollback()
        except psycopg.Error as exc:  # the socket is gone
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("pooled connection died while idle") from exc

    sa.event.listen(engine, "checkin", checked_in)
    sa.event.listen(engine, "checkout", checked_out)
