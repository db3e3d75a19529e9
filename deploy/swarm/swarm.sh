#!/usr/bin/env bash
# The stack on Docker Swarm: `swarm.sh up | deploy | down` (make swarm-up, swarm-deploy,
# swarm-down). See docs/deploy-swarm.md.
#
#   up      init a single-node swarm if there is none (and remember that we did), build the
#           images, create missing secrets, deploy; returns when every service is healthy.
#           The first deploy runs the migrations before any web task exists.
#   deploy  build, run the migrations (one-shot, new image) and wait for them, then roll
#           web over one task at a time (start-first); a failed update rolls back and this
#           exits 1.
#   down    remove the stack; leave the swarm only if `up` created it and no data is kept
#           (its secrets hold the data's passwords). SWARM_DOWN_VOLUMES=yes also removes the
#           stack's volumes and secrets (its data!): the tests use it.
#
# Settings (environment): STACK_NAME (flask-stack), SWARM_ADVERTISE_ADDR (127.0.0.1),
# APP_VERSION (a label on the web image), SWARM_BUILD=no with WEB_IMAGE=... (deploy an image
# that is already built), SWARM_TIMEOUT (s, 300), COMPOSE (the one-host stack to stop first),
# and the stack's own variables (HTTP_PORT, HTTPS_PORT, WEB_REPLICAS, ... in stack.yml).
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export STACK_NAME="${STACK_NAME:-flask-stack}"
stack_file="$here/stack.yml"
timeout="${SWARM_TIMEOUT:-300}"
read -r -a compose <<< "${COMPOSE:-docker compose}"
CREATED_LABEL=flask-stack.created-swarm
DATA_LABEL=flask-stack.data

log() { printf 'swarm: %s\n' "$*"; }
die() { printf 'swarm: %s\n' "$*" >&2; exit 1; }
svc() { printf '%s_%s' "$STACK_NAME" "$1"; }
node_id() { docker info -f '{{.Swarm.NodeID}}'; }  # `docker node update self` is refused

# ---- the swarm itself ------------------------------------------------------------------
ensure_swarm() {
	if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
		# Compose and Swarm share the daemon; a compose network lost its name resolution
		# across `swarm init`/`leave` here. Stop the one-host stack first (data is kept).
		"${compose[@]}" down >/dev/null 2>&1 || true
		log "initialising a single-node swarm (advertise ${SWARM_ADVERTISE_ADDR:-127.0.0.1})"
		docker swarm init --advertise-addr "${SWARM_ADVERTISE_ADDR:-127.0.0.1}" >/dev/null
		# Remembered in the swarm itself, so `down` leaves only a swarm that `up` made.
		docker node update --label-add "$CREATED_LABEL=true" "$(node_id)" >/dev/null
	fi
	# db, redis and nginx keep data in local volumes: pin them to one labelled node.
	if [ -z "$(docker node ls -q --filter "node.label=$DATA_LABEL=true")" ]; then
		docker node update --label-add "$DATA_LABEL=true" "$(node_id)" >/dev/null
		log "this node holds the data (label $DATA_LABEL=true)"
	fi
}

# ---- images: tagged by content, so a deploy rolls a service only when its image changed --
build_image() {  # build_image VAR NAME docker-build-args...
	local var="$1" name="$2" id
	shift 2
	docker build -q -t "$name:building" "$@" >/dev/null || die "building $name failed"
	id="$(docker image inspect -f '{{.Id}}' "$name:building")"
	id="${id#sha256:}"
	docker tag "$name:building" "$name:${id:0:12}"
	docker rmi "$name:building" >/dev/null  # only the temporary tag
	printf -v "$var" '%s:%s' "$name" "${id:0:12}"
	export "${var?}"
}

build() {
	if [ "${SWARM_BUILD:-yes}" = no ]; then
		: "${WEB_IMAGE:?SWARM_BUILD=no needs WEB_IMAGE}"
		export WEB_IMAGE
	else
		log "building the images"
		build_image WEB_IMAGE flask-stack-web --target web \
			--build-arg "APP_VERSION=${APP_VERSION:-dev}" "$root/web"
	fi
	[ -n "${NGINX_IMAGE:-}" ] || build_image NGINX_IMAGE flask-stack-nginx -f "$root/nginx/Dockerfile" "$root"
	[ -n "${PGBOUNCER_IMAGE:-}" ] || build_image PGBOUNCER_IMAGE flask-stack-pgbouncer "$root/deploy/pgbouncer"
	export NGINX_IMAGE PGBOUNCER_IMAGE
	log "images: $WEB_IMAGE $NGINX_IMAGE $PGBOUNCER_IMAGE"
}

secret_versions() {
	local line
	while read -r line; do export "${line?}"; done < <(python3 "$here/manage_secrets.py" versions)
}

stack_deploy() {
	local out
	# --resolve-image never: the images are local (no registry); a multi-node swarm needs
	# them pushed to a registry instead (docs/deploy-swarm.md).
	out="$(docker stack deploy --resolve-image never --prune -c "$stack_file" "$STACK_NAME" 2>&1)" ||
		{ printf '%s\n' "$out" >&2; die "docker stack deploy failed"; }
	# Progress lines and the CLI's note about --detach (a flag older CLIs lack) are noise;
	# anything else, such as "Ignoring unsupported options", is shown.
	printf '%s\n' "$out" | grep -v '^Updating service\|^Creating\|--detach=false' || true
}

# ---- waiting ---------------------------------------------------------------------------
# The migrate tasks of the current spec (its force-update counter and image): complete,
# failed, or neither yet.
migrate_outcome() {
	local force tasks states
	force="$(docker service inspect -f '{{.Spec.TaskTemplate.ForceUpdate}}' "$(svc migrate)")"
	tasks="$(docker service ps -q --no-trunc "$(svc migrate)")"
	[ -n "$tasks" ] || return 0
	# shellcheck disable=SC2086 # one argument per task id
	states="$(docker inspect -f '{{.Spec.ForceUpdate}} {{.Spec.ContainerSpec.Image}} {{.Status.State}}' $tasks |
		awk -v f="$force" -v i="$WEB_IMAGE" '$1 == f && $2 == i {print $3}')"
	if grep -qx complete <<< "$states"; then
		echo complete
	elif [ "$(grep -cx 'failed\|rejected' <<< "$states")" -ge 5 ]; then
		echo failed  # restart_policy.max_attempts in stack.yml
	fi
}

wait_migrate() {
	local deadline=$((SECONDS + timeout)) outcome
	while ((SECONDS < deadline)); do
		outcome="$(migrate_outcome)"
		case "$outcome" in
			complete) log "migrations applied"; return 0 ;;
			failed)
				docker service logs --tail 30 "$(svc migrate)" >&2 || true
				die "the migrations failed: web was not updated" ;;
		esac
		sleep 1
	done
	die "the migrations did not finish within ${timeout} s"
}

# web's update: "<state> <started at>", empty before its first update.
web_update() {
	docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.StartedAt}}{{end}}' \
		"$(svc web)" 2>/dev/null || true
}

# Every long-running service has all its replicas running (healthy, where it has a check)
# on its current spec; web's update neither rolled back nor paused.
converged() {  # converged UPDATE-BEFORE-THE-DEPLOY
	local name replicas state started image
	read -r state started <<< "$(web_update)"
	# A rollback of an earlier deploy is old news; one that started since is this deploy's.
	if [ "$state $started" != "$1" ]; then
		case "$state" in
			rollback_*|paused) echo "web: update $state"; return 2 ;;
			updating) return 1 ;;
		esac
	fi
	while read -r name replicas; do
		[ "$name" = "$(svc migrate)" ] && continue
		[ "${replicas%%/*}" = "${replicas#*/}" ] || return 1
		image="$(docker service inspect -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "$name")"
		# Old tasks still running (an update not yet started, or still stopping).
		if docker service ps --filter desired-state=running --format '{{.Image}} {{.CurrentState}}' "$name" |
			grep -v "^$image " | grep -q Running; then
			return 1
		fi
	done < <(docker stack services --format '{{.Name}} {{.Replicas}}' "$STACK_NAME" | sed 's/ (.*//')
}

wait_converged() {  # wait_converged UPDATE-BEFORE-THE-DEPLOY
	local deadline=$((SECONDS + timeout)) why rc
	sleep 2  # let the orchestrator start the update before judging it
	while ((SECONDS < deadline)); do
		rc=0
		why="$(converged "$1")" || rc=$?
		if [ "$rc" = 0 ]; then return 0; fi
		if [ "$rc" = 2 ]; then
			# Wait for the rollback to finish so the caller finds the old version serving.
			while [ "$(docker service inspect -f '{{.UpdateStatus.State}}' "$(svc web)")" = rollback_started ] &&
				((SECONDS < deadline)); do sleep 1; done
			docker service ps --no-trunc --format '{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}' \
				"$(svc web)" | head -8 >&2
			die "web: the update failed; Swarm rolled it back ($(docker service inspect \
				-f '{{.UpdateStatus.State}}: {{.UpdateStatus.Message}}' "$(svc web)"); was: $why)"
		fi
		sleep 1
	done
	docker stack services "$STACK_NAME" >&2
	die "the stack did not converge within ${timeout} s"
}

# ---- the commands ----------------------------------------------------------------------
deploy() {
	local started=$SECONDS
	build
	python3 "$here/manage_secrets.py" ensure
	secret_versions
	if docker service inspect "$(svc migrate)" >/dev/null 2>&1; then
		log "running the migrations ($WEB_IMAGE)"
		docker service update --detach --quiet --no-resolve-image --force \
			--image "$WEB_IMAGE" "$(svc migrate)" >/dev/null
	else
		# First deploy: everything but web and nginx, so no web task runs before the schema.
		log "first deploy: the data services and the migrations"
		WEB_REPLICAS=0 NGINX_REPLICAS=0 stack_deploy
	fi
	wait_migrate
	log "deploying the stack (web rolls one task at a time)"
	local before
	before="$(web_update)"
	stack_deploy
	wait_converged "$before"
	log "every service is up ($((SECONDS - started)) s)"
	docker stack services --format '  {{.Name}} {{.Replicas}} {{.Image}}' "$STACK_NAME"
}

up() {
	ensure_swarm
	deploy
}

down() {
	if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
		log "not in swarm mode: nothing to remove"
		return 0
	fi
	docker stack rm "$STACK_NAME" >/dev/null 2>&1 || true
	local deadline=$((SECONDS + 120))
	while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK_NAME")" ] ||
		[ -n "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK_NAME")" ]; do
		((SECONDS < deadline)) || die "the stack's containers did not go within 120 s"
		sleep 1
	done
	log "stack $STACK_NAME removed"
	if [ "${SWARM_DOWN_VOLUMES:-no}" = yes ]; then
		docker volume rm "${STACK_NAME}_pgdata" "${STACK_NAME}_redis-data" "${STACK_NAME}_tls" \
			>/dev/null 2>&1 || true
		docker secret ls -q --filter "label=flask-stack.stack=$STACK_NAME" | xargs -r docker secret rm >/dev/null
		log "volumes and secrets of $STACK_NAME removed"
	fi
	if [ "$(docker node inspect -f "{{index .Spec.Labels \"$CREATED_LABEL\"}}" "$(node_id)")" = true ]; then
		# Leaving would delete the swarm's secrets, and with them the only copy of the
		# passwords of the data the volumes keep: the next swarm-up could not open it.
		if docker volume inspect "${STACK_NAME}_pgdata" >/dev/null 2>&1; then
			log "kept the swarm: its secrets hold the passwords of the data in ${STACK_NAME}_pgdata (make swarm-up brings it back; SWARM_DOWN_VOLUMES=yes removes both)"
			return 0
		fi
		docker swarm leave --force >/dev/null
		# Networks compose made while the swarm was up do not resolve names after the
		# leave: take the one-host stack down (its data is kept; `make up` brings it back).
		"${compose[@]}" down >/dev/null 2>&1 || true
		log "left the swarm that swarm-up had created"
	fi
}

case "${1:-}" in
	up) up ;;
	deploy) deploy ;;
	down) down ;;
	*) die "usage: swarm.sh up | deploy | down" ;;
esac
