#!/usr/bin/env bash
# Renews the certificate for $SERVER_NAME if it is due (30 days or less left; otherwise the
# CA is not asked), then installs it for nginx.
# `docker compose exec acme acme-renew --force-renewal` renews now (rate limits apply).
set -Eeuo pipefail
# certbot would sleep up to 8 minutes first when not on a terminal: our loop already jitters.
certbot renew --non-interactive --no-random-sleep-on-renew --cert-name "${SERVER_NAME:?}" "$@"
exec acme-deploy
