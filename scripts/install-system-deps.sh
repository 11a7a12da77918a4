#!/usr/bin/env bash
# Installs the Debian packages cellar needs, only those missing. Idempotent; needs root
# (or passwordless sudo) only when something is missing.
set -euo pipefail

packages=(postgresql postgresql-client xfsprogs nftables iproute2 util-linux pgbackrest openssl)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
