"""The seed's demos of make_response, cookies, status codes and request data."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, make_response, render_template, request
from flask.typing import ResponseReturnValue

bp = Blueprint("demo", __name__)

REDACTED = "[redacted]"


@bp.get("/set-cookie")
def set_cookie() -> ResponseReturnValue:
    """Set a harmless demo cookie for an hour (Secure, SameSite=Lax) and say so."""
    response = make_response(render_template("demo/set_cookie.html"))
    response.set_cookie(
        "demo",
        "flask-stack",
        max_age=3600,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.get("/custom-status")
def custom_status() -> ResponseReturnValue:
    """Answer 418 with a custom header."""
    response = make_response("I'm a teapot: this response has status 418.\n", 418)
    response.headers["X-Custom-Header"] = "flask-stack"
    response.mimetype = "text/plain"
    return response


@bp.get("/request-info")
def request_info() -> ResponseReturnValue:
    """Echo what the app sees of the request, with credential cookies redacted."""
    secret_cookies = {
        current_app.config["SESSION_COOKIE_NAME"],
        current_app.config["REMEMBER_COOKIE_NAME"],
        current_app.config["SESSION_ANONYMOUS_COOKIE_NAME"],  # holds the CSRF secret
        current_app.config["DEVICE_COOKIE_NAME"],  # a recognised browser's own budgets
    }
    cookies = {k: REDACTED if k in secret_cookies else v for k, v in request.cookies.items()}
    return jsonify(
        method=request.method,
        url=request.url,
        user_agent=request.user_agent.string,
        remote_addr=request.remote_addr,
        cookies=cookies,
    )
