#!/usr/bin/env bash
# Entrypoint of the web image (web, migrate): turn *_FILE secrets and POSTGRES_*/REDIS_*
# parts into the variables the app reads, then exec the command (gunicorn by default) as
# PID 1 so it receives docker's signals. Secrets are never echoed.
set -Eeuo pipefail

# file_env VAR [DEFAULT]: VAR, or the contents of the file named by VAR_FILE (not both).
file_env() {
	local var="$1" file_var="${1}_FILE" def="${2:-}" val
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		echo >&2 "error: both $var and $file_var are set (but they are exclusive)"
		exit 1
	fi
	val="$def"
	if [ -n "${!var:-}" ]; then
		val="${!var}"
	elif [ -n "${!file_var:-}" ]; then
		if [ ! -r "${!file_var}" ]; then
			echo >&2 "error: $file_var names a file that is missing or unreadable: ${!file_var}"
			exit 1
		fi
		val="$(< "${!file_var}")"
	fi
	export "$var"="$val"
	unset "$file_var"
}

# urlencode: percent-encode stdin for use inside a URL's userinfo (a password may hold @:/).
# The value travels on stdin, never in argv, so `ps` cannot show it.
urlencode() {
	python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))'
}

file_env SECRET_KEY

file_env DATABASE_URL
if [ -z "$DATABASE_URL" ]; then
	file_env POSTGRES_PASSWORD
	if [ -n "$POSTGRES_PASSWORD" ]; then
		: "${POSTGRES_USER:=app}" "${POSTGRES_DB:=app}" "${POSTGRES_HOST:=db}" "${POSTGRES_PORT:=5432}"
		pg_user="$(printf '%s' "$POSTGRES_USER" | urlencode)"
		pg_pass="$(printf '%s' "$POSTGRES_PASSWORD" | urlencode)"
		export DATABASE_URL="postgresql+psycopg://${pg_user}:${pg_pass}@${POSTGRES_HOST}:${POSTGRES_PORT}/${POSTGRES_DB}"
		unset pg_pass
	fi
	unset POSTGRES_PASSWORD  # only the URL is needed from here on
fi

file_env REDIS_URL
if [ -z "$REDIS_URL" ]; then
	file_env REDIS_PASSWORD
	if [ -n "$REDIS_PASSWORD" ]; then
		: "${REDIS_HOST:=redis}" "${REDIS_PORT:=6379}" "${REDIS_DB:=0}" "${REDIS_USER:=}"
		redis_user="$(printf '%s' "$REDIS_USER" | urlencode)"
		redis_pass="$(printf '%s' "$REDIS_PASSWORD" | urlencode)"
		export REDIS_URL="redis://${redis_user}:${redis_pass}@${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}"
		unset redis_pass
	fi
	unset REDIS_PASSWORD
fi

# Empty means "not set" (compose passes ${WEB_CONCURRENCY:-}); gunicorn itself would choke
# on an empty WEB_CONCURRENCY before reading gunicorn.conf.py.
[ -n "${WEB_CONCURRENCY:-}" ] || unset WEB_CONCURRENCY

# Anything still missing is reported by the app's production config, in one clear line.
exec "$@"
