#!/usr/bin/env bash
# Build (or reuse) the Debian 12 test image for the kvm_host role tests.
# Output dir (default .build/node-image) holds: rootfs.ext4, vmlinuz, initrd.img, id_ed25519{,.pub}.
# Reused when present: delete the directory to rebuild.
set -euo pipefail
OUT="${1:-${VIRTFLEET_NODE_IMAGE_DIR:-.build/node-image}}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# The image is rebuilt when this script changes (its hash is the cache key).
STAMP="$(sha256sum "$0" | cut -d' ' -f1)"
if [ -s "$OUT/rootfs.ext4" ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ] && [ -s "$OUT/id_ed25519" ] \
        && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ]; then
    echo "node image: reusing $OUT"
    exit 0
fi
rm -f "$OUT/rootfs.ext4" "$OUT/stamp"
for tool in mmdebstrap debvm-create qemu-system-x86_64 ssh ssh-keygen /sbin/debugfs; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run tests/node/install_deps.sh (as root)" >&2; exit 2; }
done
rm -f "$OUT/rootfs.ext4.tmp" "$OUT/id_ed25519" "$OUT/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C virtfleet-node-test -f "$OUT/id_ed25519"
start=$(date +%s)
# python3 for Ansible; linux-image-amd64 (not the default cloud kernel) for kvm_amd/kvm_intel/vhost_net;
# kmod for modprobe; udev so /dev/kvm gets its group and mode from rules like on a real node;
# libvirt-clients (no daemon) so kvm_host_info parses a real virt-host-validate.
debvm-create -r bookworm -o "$OUT/rootfs.ext4.tmp" -z 3G -k "$OUT/id_ed25519.pub" -h kvmnode -- \
    --include=linux-image-amd64,python3,python3-apt,kmod,udev,procps,openssh-server,iproute2,libvirt-clients \
    --aptopt='Acquire::Retries "3"'
kernel=$(/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "stat /vmlinuz" 2>/dev/null | sed 's/Fast link dest: "\(.*\)"/\1/;t;d')
initrd=$(/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "stat /initrd.img" 2>/dev/null | sed 's/Fast link dest: "\(.*\)"/\1/;t;d')
case "$kernel" in /*) ;; *) kernel="/$kernel" ;; esac
case "$initrd" in /*) ;; *) initrd="/$initrd" ;; esac
/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "cat $kernel" > "$OUT/vmlinuz" 2>/dev/null
/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "cat $initrd" > "$OUT/initrd.img" 2>/dev/null
if [ ! -s "$OUT/vmlinuz" ] || [ ! -s "$OUT/initrd.img" ]; then
    echo "could not extract kernel ($kernel) / initrd ($initrd)" >&2
    exit 1
fi
/sbin/e2label "$OUT/rootfs.ext4.tmp" > "$OUT/label"
mv "$OUT/rootfs.ext4.tmp" "$OUT/rootfs.ext4"
echo "$STAMP" > "$OUT/stamp"
echo "node image: built $OUT in $(( $(date +%s) - start ))s"
