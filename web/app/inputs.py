"""Refuse what no field accepts before a view sees it: NUL characters.

PostgreSQL cannot store or compare text holding NUL (U+0000); left alone, a NUL typed into
any field or URL would reach a query and answer 500. Every other character is the forms'
business (they say what is wrong with a value).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, abort, request

NUL = "\x00"
MESSAGE = "The request contains a NUL character (\\0), which no field accepts."
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _has_nul(values: Iterable[str]) -> bool:
    return any(NUL in value for value in values)


def register(app: Flask) -> None:
    """Answer 400 to a request whose path, query, form or URL variables hold a NUL."""

    @app.before_request
    def refuse_nul() -> None:
        parts = [request.path, *(request.view_args or {}).values()]
        # Only what is there: building an empty request.args or request.form costs as much
        # as the rest of a health check (werkzeug parses a form only of these two types).
        multis = [request.args] if request.query_string else []
        if request.mimetype in FORM_TYPES:
            multis.append(request.form)
        for multi in multis:
            for key, values in multi.lists():
                parts += [key, *values]
        if _has_nul(str(part) for part in parts):
            abort(400, description=MESSAGE)
