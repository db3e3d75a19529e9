#!/bin/sh
# Entrypoint of the web image (web, migrate): exec the command (gunicorn by default) as PID 1
# so it receives docker's signals. Settings and secrets (the *_FILE variables, the database
# and Redis URLs) are read by the app itself: web/app/config.py.
set -eu

# Empty means "not set" (compose passes ${WEB_CONCURRENCY:-}): gunicorn reads the variable
# before gunicorn.conf.py and would choke on an empty value.
[ -n "${WEB_CONCURRENCY:-}" ] || unset WEB_CONCURRENCY

exec "$@"
