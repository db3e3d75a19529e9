#!/bin/sh
# The exporter takes its password from REDIS_PASSWORD (its --redis.password-file wants a
# JSON map): read the generated secret into the environment of the exporter only, never argv.
set -eu
REDIS_PASSWORD="$(cat "${REDIS_PASSWORD_FILE:?}")"
export REDIS_PASSWORD
unset REDIS_PASSWORD_FILE
exec prometheus-redis-exporter "$@"
