#!/bin/sh
# Runs at container start (/docker-entrypoint.d/): starts the certificate watcher in the
# background; it outlives this script and reloads nginx when the certificate changes.
/usr/local/bin/cert-watch </dev/null &
