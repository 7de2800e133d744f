#!/usr/bin/env bash
# Installs the Debian packages the isolating executors and their tests use: bubblewrap (bwrap),
# podman with runc, an OpenSSH server and client (ssh executor), busybox-static (tiny test images).
# Needs root and apt-get; does nothing for packages already installed.
set -euo pipefail
PACKAGES=(bubblewrap podman runc uidmap openssh-server openssh-client busybox-static)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host packages: all installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "host packages missing: ${missing[*]} (run this script as root to install them)" >&2
  exit 1
fi
echo "host packages: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
