#!/usr/bin/env bash
# `make deploy`: replace the web replicas of a running compose stack one by one, with nginx
# serving throughout. Build the new image, migrate the database, then for each old replica:
# start a new one, wait until it is healthy and ready (/readyz: PostgreSQL, Redis and the
# schema at this image's head), let nginx take it into rotation, then stop the old one
# (it drains; see web/gunicorn.conf.py). Ends with as many replicas as it found (at least
# one). If the new image does not become ready, it is removed and no old replica is touched.
#
# Settings (environment): COMPOSE (the compose command, with -p/-f as needed),
# DEPLOY_BUILD=no (deploy the already-built $WEB_IMAGE), DEPLOY_MIGRATE=no (a rollback: the
# schema stays where it is, expand/contract), DEPLOY_READY_TIMEOUT (s, 120), DEPLOY_SETTLE
# (s, 10: nginx's fail_timeout, nginx/upstream.conf). DOCKER_HOST may name another engine:
# deploy/remote.py (`make deploy HOST=...`) runs this same rollout on a remote host.
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
read -r -a compose <<< "${COMPOSE:-docker compose}"
ready_timeout="${DEPLOY_READY_TIMEOUT:-120}"
settle="${DEPLOY_SETTLE:-10}"

log() { printf 'deploy: %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

running_web() { "${compose[@]}" ps -q web; }
every_web() { "${compose[@]}" ps -a -q web; }  # a new replica may already have exited

# wait_ready ID: return 0 once healthy and ready (/readyz), 1 if it stops, restarts or times
# out. In Python, reading `docker inspect`'s JSON (deploy/wait_ready.py).
wait_ready() {
	python3 "$here/wait_ready.py" "$1" "$ready_timeout"
}

# give_up ID: show why the new replica failed, remove it, and stop the deploy once nginx has
# dropped its address (it re-resolves `web` every ~2 s), so no request is sent there after.
give_up() {
	printf 'deploy: the new replica did not become ready (it exited, or %s s passed); its last log lines:\n' \
		"$ready_timeout" >&2
	docker logs --tail 20 "$1" 2>&1 | sed 's/^/  | /' >&2
	docker rm -f "$1" >/dev/null
	sleep 3
	die "stopped: ${replaced} of ${total} replica(s) replaced so far; the others were not touched"
}

started=$SECONDS
if [ "${DEPLOY_BUILD:-yes}" != no ]; then
	log "building the web image"
	"${compose[@]}" build web
fi

if [ "${DEPLOY_MIGRATE:-yes}" != no ]; then
	log "running the migrations"
	"${compose[@]}" run --rm migrate || die "the migrations failed: no replica was replaced"
	# The migrate container of the last `up` holds the old image. Remove it: the replicas
	# below start after one of the new image (by now a no-op upgrade). They are started with
	# their dependencies, not --no-deps, which would give them another config hash, so that
	# the next `docker compose up` would recreate every replica and nginx.
	"${compose[@]}" rm -fs migrate
fi

mapfile -t old < <(running_web)
total=${#old[@]}
if ((total == 0)); then
	log "no web replica is running: starting one"
	"${compose[@]}" up -d --wait web
	exit 0
fi
log "replacing ${total} replica(s) one by one"
replaced=0

for id in "${old[@]}"; do
	mapfile -t running < <(running_web)
	mapfile -t before < <(every_web)
	"${compose[@]}" up -d --no-recreate --scale web="$((${#running[@]} + 1))" web
	new="$(comm -13 <(printf '%s\n' "${before[@]}" | sort) <(every_web | sort) | head -n 1)"
	[ -n "$new" ] || die "no new replica was started"
	# Until it is ready, a crashing replica must not restart in a loop: each restart puts
	# it back in nginx's DNS for a moment, under an address that then vanishes. One that
	# exited before its policy could be changed (Docker refuses to update it) is given up
	# at once, before Docker restarts it.
	if ! docker update --restart no "$new" >/dev/null 2>&1 || ! wait_ready "$new"; then
		give_up "$new"
	fi
	docker update --restart unless-stopped "$new" >/dev/null
	log "new replica ${new:0:12} is ready; in rotation after ${settle} s"
	sleep "$settle"
	log "stopping old replica ${id:0:12} (it drains first)"
	docker stop "$id" >/dev/null
	docker rm "$id" >/dev/null
	replaced=$((replaced + 1))
done
log "done: ${total} replica(s) replaced in $((SECONDS - started)) s"
