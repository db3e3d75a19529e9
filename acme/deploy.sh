#!/usr/bin/env bash
# Copies certbot's current certificate (full chain) and key to the folder nginx serves from
# (tls.crt, tls.key), unless they are already there. The key goes first and each file is
# renamed into place whole, so nginx never reads half a file; nginx/cert-watch.sh sees the
# change and reloads nginx.
set -Eeuo pipefail

lineage="${RENEWED_LINEAGE:-/etc/letsencrypt/live/${SERVER_NAME:?}}"
dest="${ACME_TLS_DIR:-/tls}"

if cmp -s "$lineage/fullchain.pem" "$dest/tls.crt" && cmp -s "$lineage/privkey.pem" "$dest/tls.key"; then
	exit 0
fi
umask 077   # the key is for root (the nginx master) only
cp "$lineage/privkey.pem" "$dest/.tls.key.new"
cp "$lineage/fullchain.pem" "$dest/.tls.crt.new"
chmod 0644 "$dest/.tls.crt.new"
# Without the marker, nginx/30-self-signed-cert.sh keeps this certificate on a restart.
rm -f "$dest/.self-signed"
mv "$dest/.tls.key.new" "$dest/tls.key"
mv "$dest/.tls.crt.new" "$dest/tls.crt"
echo "acme: installed the certificate from $lineage as $dest/tls.crt; nginx reloads when it sees it"
