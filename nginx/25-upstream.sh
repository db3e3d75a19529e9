#!/usr/bin/env bash
# Runs at container start (/docker-entrypoint.d/). Picks how nginx reaches the web replicas:
# nginx >= 1.27.3 can re-resolve an upstream{} server (`resolve`), which keeps a keep-alive
# pool; older nginx resolves a variable proxy_pass per request instead. Both follow
# `docker compose up --scale web=N` without a reload.
set -Eeuo pipefail

src=/etc/nginx/upstream
version="$(nginx -v 2>&1)"; version="${version##*/}"; version="${version%% *}"
if printf '%s\n' 1.27.3 "$version" | sort -V -C; then
	cp "$src/keepalive.conf" /etc/nginx/conf.d/upstream.conf
	cp "$src/keepalive.pass" /etc/nginx/conf.d/upstream.pass
	echo "$0: nginx $version: keep-alive upstream pool with re-resolution"
else
	rm -f /etc/nginx/conf.d/upstream.conf
	cp "$src/per-request.pass" /etc/nginx/conf.d/upstream.pass
	echo "$0: nginx $version: per-request resolution (no upstream keep-alive before 1.27.3)"
fi
