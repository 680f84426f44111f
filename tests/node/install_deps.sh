#!/usr/bin/env bash
# System packages the node suite needs: image build (mmdebstrap, debvm, debugfs), QEMU (TCG), ssh.
# Installs only what is missing; needs root for that (CI runs as root).
set -euo pipefail
declare -A pkg_for=([mmdebstrap]=mmdebstrap [debvm-create]=debvm [qemu-system-x86_64]=qemu-system-x86
                    [ssh]=openssh-client [ssh-keygen]=openssh-client [/sbin/debugfs]=e2fsprogs [e2label]=e2fsprogs)
missing=()
for tool in "${!pkg_for[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg_for[$tool]}")
done
# Without recommends, QEMU firmware and NIC ROMs and genext2fs (mmdebstrap ext2 output) must be named.
for pkg in qemu-system-x86 qemu-system-data seabios ipxe-qemu genext2fs e2fsprogs mmdebstrap debvm; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$(id -u)" != 0 ]; then
        echo "node suite needs: ${missing[*]} (run: sudo apt-get install --no-install-recommends ${missing[*]})" >&2
        exit 2
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
