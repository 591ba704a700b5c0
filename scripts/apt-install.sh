#!/usr/bin/env bash
# Install the Debian packages kvnet uses, without letting their system services start.
# openvswitch-switch and etcd-server ship services; kvnet runs its own instances inside lab
# namespaces, so a service started in the root namespace would only be in the way. Debian's
# policy-rc.d mechanism (exit 101 = "do not start") is put in place for the install if absent.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "apt-get install ${missing[*]}"
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
