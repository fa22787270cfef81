#!/usr/bin/env bash
# Install the Debian packages an end-to-end suite needs, those not installed yet (apt-get; sudo
# when not root). Debian's server packages may start their own servers on the default ports; the
# suites run private ones on free loopback ports instead.
#   scripts/install-debian-packages.sh PACKAGE...
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "== apt-get install ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
