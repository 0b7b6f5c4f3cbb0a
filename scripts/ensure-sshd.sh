#!/usr/bin/env bash
# Makes sure the OpenSSH server that the SSH tunnel tests of
# providers/postgres start (a throwaway sshd on a loopback port, with its own
# configuration) is installed. Idempotent: does nothing when /usr/sbin/sshd
# is already there. The package's own sshd service is not wanted: the tests
# run sshd themselves, so a service the package may start is stopped.
set -euo pipefail

sshd=/usr/sbin/sshd

if [ -x "$sshd" ]; then
	exit 0
fi

# as_root runs a command as root: directly when we are root, else with sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "need root (or sudo) to run: $*" >&2
		return 1
	fi
}

echo "$sshd not found; installing openssh-server with apt-get"
if ! command -v apt-get >/dev/null 2>&1; then
	echo "apt-get not found: install the OpenSSH server (sshd) by hand" >&2
	exit 1
fi
as_root apt-get update -qq
# policy-rc.d keeps the package from starting its service where no init
# system would stop it again.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
	as_root chmod 755 "$policy"
	made_policy=1
fi
status=0
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server || status=$?
if [ -n "$made_policy" ]; then
	as_root rm -f "$policy"
fi
if [ "$status" -ne 0 ]; then
	exit "$status"
fi
if [ ! -x "$sshd" ]; then
	echo "openssh-server is installed but $sshd is still missing" >&2
	exit 1
fi
