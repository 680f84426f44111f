#!/usr/bin/env bash
# Build (or reuse) the Debian 12 guest image that backs "real guest" VMIs in the kubeapi emulator.
# Output dir (default .build/guest-image, env VIRTFLEET_GUEST_IMAGE_DIR) holds: rootfs.ext4, vmlinuz,
# initrd.img, label, stamp. Reused when present and built by this very script (its hash is the cache key).
#
# The image carries cloud-init, openssh-server, python3 and sudo, and NO credentials: no SSH key, a locked
# root password and no SSH host keys. The only way in is what the VM's cloudInitNoCloud user data adds
# (cloud-init's NoCloud datasource reads the `cidata` seed disk the emulator attaches).
set -euo pipefail
OUT="${1:-${VIRTFLEET_GUEST_IMAGE_DIR:-.build/guest-image}}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAMP="$(sha256sum "$0" | cut -d' ' -f1)"
# One build at a time per output dir (several test runs and `make demo` may start at once).
exec 9>"$OUT/.lock"
flock 9
if [ -s "$OUT/rootfs.ext4" ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ] && [ -s "$OUT/label" ] \
        && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ]; then
    echo "guest image: reusing $OUT"
    exit 0
fi
rm -f "$OUT/stamp"
for tool in mmdebstrap debvm-create qemu-system-x86_64 /sbin/debugfs /sbin/e2label; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run tests/guest/install_deps.sh (as root)" >&2; exit 2; }
done
rm -f "$OUT/rootfs.ext4.tmp"
start=$(date +%s)
# Only NoCloud is probed (the emulator's seed disk, else nothing): no slow network probing of EC2/OpenStack/...
# Host keys are made at first boot (ed25519 only: RSA keygen costs seconds under TCG).
CLOUD_CFG="$OUT/90-virtfleet-nocloud.cfg"
printf '%s\n' 'datasource_list: [NoCloud, None]' 'locale: C.UTF-8' 'ssh_deletekeys: true' 'ssh_genkeytypes: [ed25519]' > "$CLOUD_CFG"
# Units that only cost boot time in a short-lived test guest.
SLOW_UNITS='apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer
man-db.timer dpkg-db-backup.timer systemd-networkd-wait-online.service'
# -s autologin: no root shell on the serial console. linux-image-cloud-amd64 (debvm's default): small and
# quick to boot, has virtio and vfat for the seed disk. The hooks' "$1" (the image root) is mmdebstrap's to expand.
# shellcheck disable=SC2016
debvm-create -r bookworm -o "$OUT/rootfs.ext4.tmp" -z 2G -h debian -s autologin -- \
    --include=cloud-init,openssh-server,python3,python3-apt,sudo,procps,iproute2,e2fsprogs \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='passwd --root "$1" --lock root' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook="upload $CLOUD_CFG /etc/cloud/cloud.cfg.d/90-virtfleet-nocloud.cfg" \
    --customize-hook="systemctl --root \"\$1\" mask $(echo "$SLOW_UNITS" | tr '\n' ' ')" \
    --customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"'
# Nothing the image could let a stranger in with.
for probe in /root/.ssh/authorized_keys /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_rsa_key; do
    if /sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "stat $probe" 2>/dev/null | grep -q '^Inode:'; then
        echo "guest image must not contain $probe" >&2
        exit 1
    fi
done
kernel=$(/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "stat /vmlinuz" 2>/dev/null | sed 's/Fast link dest: "\(.*\)"/\1/;t;d')
initrd=$(/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "stat /initrd.img" 2>/dev/null | sed 's/Fast link dest: "\(.*\)"/\1/;t;d')
case "$kernel" in /*) ;; *) kernel="/$kernel" ;; esac
case "$initrd" in /*) ;; *) initrd="/$initrd" ;; esac
# New files replace the old ones by rename: guests already running keep the files they opened.
/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "cat $kernel" > "$OUT/vmlinuz.tmp" 2>/dev/null
/sbin/debugfs "$OUT/rootfs.ext4.tmp" -R "cat $initrd" > "$OUT/initrd.img.tmp" 2>/dev/null
if [ ! -s "$OUT/vmlinuz.tmp" ] || [ ! -s "$OUT/initrd.img.tmp" ]; then
    echo "could not extract kernel ($kernel) / initrd ($initrd)" >&2
    exit 1
fi
/sbin/e2label "$OUT/rootfs.ext4.tmp" > "$OUT/label.tmp"
for f in vmlinuz initrd.img label rootfs.ext4; do
    mv "$OUT/$f.tmp" "$OUT/$f"
done
echo "$STAMP" > "$OUT/stamp"
echo "guest image: built $OUT in $(( $(date +%s) - start ))s"
