#!/usr/bin/env bash
# Installs the Debian packages the isolating executors and their tests use: bubblewrap (bwrap),
# podman with runc and catatonit (its --init), an OpenSSH server and client (ssh executor), busybox-static (tiny test images),
# jq (the secret masking tests check what it prints), and for every runner run as root util-linux (setpriv: job processes die
# with their runner) and procps (pkill: a slot's processes are killed by user); webhook (adnanh/webhook) is the webhook
# intake benchmark's peer.
# `npm test` runs it first. It installs only as root with apt-get, and does nothing for packages
# already installed; otherwise it says what is missing (the tests needing it are then skipped).
set -euo pipefail
PACKAGES=(bubblewrap podman runc catatonit uidmap openssh-server openssh-client busybox-static jq util-linux procps webhook)
missing=()
command -v dpkg-query >/dev/null || { echo "host packages: not a Debian system; install ${PACKAGES[*]} by hand" >&2; exit 0; }
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host packages: all installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "host packages missing: ${missing[*]} (run scripts/install-host-packages.sh as root on Debian to install them)" >&2
  exit 0
fi
echo "host packages: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
