#!/bin/sh
# Start the host: dockerd in the background (unless NO_DOCKER=1: a host without Docker),
# then sshd in the foreground. AUTHORIZED_KEY is the test's public key for user `deploy`.
set -eu

install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /home/deploy/.ssh/authorized_keys
chown deploy:deploy /home/deploy/.ssh/authorized_keys
chmod 0600 /home/deploy/.ssh/authorized_keys
ssh-keygen -A >/dev/null

if [ "${NO_DOCKER:-0}" = 1 ]; then
	rm -f /usr/bin/docker /usr/sbin/dockerd
else
	dockerd >/var/log/dockerd.log 2>&1 &
fi
exec /usr/sbin/sshd -D -e -o PasswordAuthentication=no -o PermitRootLogin=no
