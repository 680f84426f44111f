#!/usr/bin/env bash
# System packages the real-guest suite needs: everything the node suite needs (image build, QEMU TCG, ssh),
# plus dosfstools and mtools, with which the emulator writes the cloud-init `cidata` seed disk.
# Installs only what is missing; needs root for that (CI runs as root).
set -euo pipefail
bash "$(dirname "$0")/../node/install_deps.sh"
missing=()
for pkg in dosfstools mtools; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "guest suite needs: ${missing[*]} (run: sudo apt-get install --no-install-recommends ${missing[*]})" >&2
        exit 2
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
