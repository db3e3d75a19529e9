"""WSGI entry point: `gunicorn wsgi:app`, and `FLASK_APP=wsgi` for the flask CLI."""

from __future__ import annotations

import sys

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line instead of a traceback: the operator has a setting to fix, not a bug.
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(78)  # EX_CONFIG
