#!/bin/sh
# The container's healthcheck (docker-compose.yml). Healthy once nginx has reached a web
# replica through its pool, so `docker compose up --wait` returns when https:// serves the
# app. After that first success it checks nginx alone: a web outage or restart must not
# turn nginx unhealthy (`up --wait` fails outright on an unhealthy container).
set -eu
marker=/tmp/reached-web
if curl -fsS -o /dev/null http://127.0.0.1/nginx-ready; then
	touch "$marker"
	exit 0
fi
[ -f "$marker" ] && exec curl -fsS -o /dev/null http://127.0.0.1/nginx-health
exit 1
