"""Error pages: a template per status, JSON for JSON clients, never a stack trace."""

from __future__ import annotations

from flask import Flask, current_app, g, jsonify, make_response, render_template, request
from flask.typing import ResponseReturnValue
from flask.wrappers import Response
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    SecurityError,
    ServiceUnavailable,
)

from .extensions import db
from .passwords import HashingBusy

UNKNOWN_HOST = "400 Bad Request: this server does not serve that host name."
PAGES = (400, 403, 404, 405, 413, 429, 500, 503)
RETRY_SECONDS = 5


def wants_json() -> bool:
    """Return whether the client prefers JSON to HTML."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > 0


def render_error(error: HTTPException) -> Response:
    """Render `error` as JSON or as its page, keeping its headers (Allow, Retry-After)."""
    code = error.code or 500
    description = error.description if code != 500 else InternalServerError.description
    if wants_json():
        response = jsonify(error=error.name, status=code, message=description)
    else:
        template = f"errors/{code}.html" if code in PAGES else "errors/error.html"
        # A 5xx page must not touch the database or session store that may have caused it.
        response = make_response(
            render_template(template, error=error, description=description, minimal=code >= 500)
        )
    response.status_code = code
    if code != 500:
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
    return response


def service_unavailable(what: str, fault: bool = True) -> Response:
    """Answer 503 naming `what` (the session store, the database...), with Retry-After.

    A fault (a server down) is logged as an error with its traceback; load shed on purpose
    (every hashing slot busy in a login flood) as one warning line.
    """
    db.session.rollback()
    if fault:
        current_app.logger.error("%s unavailable", what, exc_info=True)
    else:
        current_app.logger.warning("%s busy: answered 503", what)
    response = render_error(
        ServiceUnavailable(f"The {what} is unavailable right now. Please try again.")
    )
    response.headers["Retry-After"] = str(RETRY_SECONDS)
    return response


def register(app: Flask) -> None:
    """Install the handlers on `app`."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        return render_error(error)

    @app.errorhandler(SecurityError)
    def untrusted_host(error: SecurityError) -> ResponseReturnValue:
        # No URLs can be built for a host we do not serve, so no templated page either.
        if wants_json():
            return jsonify(error="Bad Request", status=400, message=UNKNOWN_HOST), 400
        return UNKNOWN_HOST + "\n", 400, {"Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> ResponseReturnValue:
        error.description = (
            f"The form could not be accepted ({error.description.rstrip('.')}). "
            "It may have expired: go back, reload the page and try again."
        )
        return render_error(error)

    # Redis outages are answered by sessions/__init__.py, the home of the session store.

    @app.errorhandler(OperationalError)
    def database_error(error: OperationalError) -> ResponseReturnValue:
        g.database_unavailable = True  # the page must not ask the database again (loader.py)
        return service_unavailable("database")

    @app.errorhandler(HashingBusy)
    def hashing_busy(error: HashingBusy) -> ResponseReturnValue:
        return service_unavailable("login service", fault=False)  # load, not a fault

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> ResponseReturnValue:
        db.session.rollback()
        app.logger.exception("unhandled error")
        return render_error(InternalServerError())
