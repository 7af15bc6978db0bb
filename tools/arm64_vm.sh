#!/usr/bin/env bash
# A real Debian 12 arm64 machine for the tests (tests/integration/test_arm64_host.py): build its disk image once,
# from Debian's own arm64 packages, into a cache outside the clone, and print the directory holding it.
#
#   tools/arm64_vm.sh           build the image unless it is cached; print its directory
#   tools/arm64_vm.sh --check   print the directory of the cached image, build nothing (exit 1 if missing)
#   tools/arm64_vm.sh --dir     print the directory the current recipe builds into (cached or not)
#
# Cache: ${ARCHFLEET_CACHE:-/var/cache/archfleet}/vm/debian12-arm64-<recipe hash>/ with
#   root.qcow2    the root file system (ext4 on the whole virtio-blk disk, no partition table); the tests boot
#                 copy-on-write overlays of it and never write it
#   vmlinuz       Debian's linux-image-arm64 kernel; initrd.img a small busybox initramfs made here (it loads
#                 virtio_pci, virtio_blk and ext4, which are modules in Debian's config, mounts /dev/vda and
#                 switch_roots to systemd)
#   id_ed25519    the key root accepts over SSH (a test machine on loopback: the key is not a secret)
#   apt/          the archive's InRelease the image's apt lists came from (harness.arm64_vm serves it to the VM
#                 as an HTTP proxy would, so `apt-get update` in the VM needs no network)
#   cmdline       the kernel command line; build.log the timings of the build and of its verification boot
# The hash covers this script from its `: recipe` line to `: end of recipe`, comment lines left out, so a recipe change builds
# again and an unchanged one builds nothing. Older debian12-arm64-* directories are removed after a build.
#
# How:
#  1. mmdebstrap --mode=root --architectures=arm64 builds the root file system on this machine: the arm64
#     maintainer scripts run through QEMU user emulation (qemu-aarch64-static), so a binfmt_misc entry
#     qemu-aarch64 (flag F) must exist while it runs. The script takes the lock every user of binfmt_misc holds
#     (/run/lock/archfleet-binfmt.lock), uses an enabled qemu-aarch64 entry as it finds it, or else registers
#     one (or enables a disabled one) and puts the table back exactly as found when it exits (trap on EXIT).
#     Debian's initramfs generation is diverted to /bin/true (it is what took 28 minutes of CPU under
#     qemu-system-aarch64 in the first attempt, and the VM boots with the busybox initramfs instead).
#  2. mke2fs -d turns the tree into an ext4 image (no loop mount), qemu-img makes it qcow2;
#  3. a verification boot: an overlay of the image must answer SSH and run python3 and dockerd on aarch64.
# The image holds what the build_host role installs on an arm64 Debian host with its defaults (docker.io,
# qemu-user-static, python3-requests) plus python3, sshd and sudo, so no test needs the network in the VM.
# Needs (Debian): mmdebstrap qemu-user-static qemu-system-arm qemu-utils e2fsprogs kmod cpio openssh-client
# python3. Environment: ARM64_VM_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

CACHE=${ARCHFLEET_CACHE:-/var/cache/archfleet}
MIRROR=${ARM64_VM_MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
SELF="$HERE/$(basename "$0")"
# The recipe is everything from the `: recipe` line to the `: end of recipe` line (comment lines left out): the
# options, checks and the verification boot around it do not change what is built.
HASH=$(sed -n '/^: recipe$/,/^: end of recipe$/p' "$SELF" | grep -v '^[[:space:]]*#' | sha256sum | cut -c1-12)
DIR="$CACHE/vm/debian12-arm64-$HASH"
BINFMT=/proc/sys/fs/binfmt_misc
LOCK=/run/lock/archfleet-binfmt.lock
QEMU_AARCH64=/usr/bin/qemu-aarch64-static
# The line qemu-user-static's /usr/lib/binfmt.d/qemu-aarch64.conf registers, with flag F (the interpreter is
# opened at registration, so it runs inside the chroot, where /usr/bin/qemu-aarch64-static does not exist).
AARCH64_ENTRY=':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU_AARCH64"':F'

log() { printf '%s arm64_vm: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

case "${1:-}" in
  --dir) echo "$DIR"; exit 0 ;;
  --check) [ -f "$DIR/ready" ] && { echo "$DIR"; exit 0; }; echo "arm64_vm: no image at $DIR" >&2; exit 1 ;;
  "") ;;
  *) echo "usage: $0 [--check|--dir]" >&2; exit 2 ;;
esac

if [ -f "$DIR/ready" ]; then echo "$DIR"; exit 0; fi

# Exit 3: this machine cannot build the image (the tests skip naming the reason).
cannot() { log "$*"; exit 3; }
for tool in mmdebstrap qemu-system-aarch64 qemu-img mke2fs modprobe ssh ssh-keygen cpio python3; do
  command -v "$tool" >/dev/null ||
    cannot "$tool is missing (Debian packages: mmdebstrap qemu-user-static qemu-system-arm qemu-utils e2fsprogs kmod cpio openssh-client python3)"
done
[ -x "$QEMU_AARCH64" ] || cannot "$QEMU_AARCH64 is missing (Debian package qemu-user-static)"
[ "$(id -u)" = 0 ] || cannot "must run as root (mmdebstrap --mode=root, binfmt_misc, mke2fs -d keeps file ownership)"

mkdir -p "$CACHE/vm"
exec 9>"$CACHE/vm/.lock"
flock 9
if [ -f "$DIR/ready" ]; then echo "$DIR"; exit 0; fi

WORK="$DIR.build"
QEMU_PID=""
BINFMT_UNDO=""      # what puts binfmt_misc back as found: "remove", "disable", "umount" or ""
# Everything started or changed here is undone when the script ends, however it ends.
on_exit() {
  local rc=$?
  if [ -n "$QEMU_PID" ]; then kill "$QEMU_PID" 2>/dev/null || true; fi
  binfmt_restore
  if [ "$rc" != 0 ]; then log "failed; work left in $WORK"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# binfmt_misc is one table for the whole kernel: hold its lock while the build relies on qemu-aarch64.
binfmt_take() {
  exec 8>"$LOCK"
  log "waiting for the binfmt_misc lock $LOCK"
  flock 8
  if [ ! -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT"
    BINFMT_UNDO="umount"
  fi
  local entry="$BINFMT/qemu-aarch64"
  if [ -e "$entry" ] && [ "$(head -1 "$entry")" = enabled ]; then
    grep -q '^flags:.*F' "$entry" ||
      die "binfmt_misc entry qemu-aarch64 exists without flag F ($(grep '^flags' "$entry")): its interpreter is not found inside the chroot; left as found"
    log "using the existing binfmt_misc entry qemu-aarch64 ($(grep '^interpreter' "$entry"))"
  elif [ -e "$entry" ]; then
    grep -q '^flags:.*F' "$entry" ||
      die "binfmt_misc entry qemu-aarch64 is disabled and lacks flag F; left as found"
    echo 1 >"$entry"
    BINFMT_UNDO="disable${BINFMT_UNDO:+ $BINFMT_UNDO}"
    log "enabled the binfmt_misc entry qemu-aarch64 for the build (disabled again afterwards)"
  else
    printf '%s' "$AARCH64_ENTRY" >"$BINFMT/register"
    BINFMT_UNDO="remove${BINFMT_UNDO:+ $BINFMT_UNDO}"
    log "registered binfmt_misc entry qemu-aarch64 -> $QEMU_AARCH64 (flag F) for the build (removed afterwards)"
  fi
}
binfmt_restore() {
  local step
  for step in $BINFMT_UNDO; do
    case $step in
      remove) echo -1 >"$BINFMT/qemu-aarch64" && log "removed binfmt_misc entry qemu-aarch64 again" ;;
      disable) echo 0 >"$BINFMT/qemu-aarch64" && log "disabled binfmt_misc entry qemu-aarch64 again" ;;
      umount) umount "$BINFMT" ;;
    esac
  done
  BINFMT_UNDO=""
  exec 8>&-
}

# 3. The verification boot (not part of the recipe): an overlay of the image must answer SSH with python3 on
# aarch64 and run dockerd. Sets T_BOOT, T_SSH and T_DOCKER. (romfile= : no iPXE option ROM, which is in another
# package and not needed for a kernel booted with -kernel.)
verify_boot() {
  local PORT answer docker
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  qemu-img create -q -f qcow2 -b root.qcow2 -F qcow2 "$WORK/verify.qcow2"
  log "verification boot, SSH on 127.0.0.1:$PORT (console: $WORK/verify-console.log)"
  T_BOOT=$(date +%s)
  nice -n 10 qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 2048 -display none -monitor none -no-reboot \
    -serial "file:$WORK/verify-console.log" -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" -append "$CMDLINE" \
    -drive "file=$WORK/verify.qcow2,format=qcow2,if=none,id=hd0" -device virtio-blk-pci,drive=hd0 \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22" -device virtio-net-pci,netdev=n0,romfile= &
  QEMU_PID=$!
  SSH=(ssh -q -i "$WORK/id_ed25519" -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
       -o ConnectTimeout=20 -o BatchMode=yes root@127.0.0.1)
  answer=""
  for _ in $(seq 1 120); do
    kill -0 "$QEMU_PID" 2>/dev/null || die "the VM exited during the verification boot: $(tail -20 "$WORK/verify-console.log")"
    if answer=$("${SSH[@]}" 'uname -m; python3 -c "import platform; print(platform.machine())"' 2>/dev/null); then
      break
    fi
    sleep 5
  done
  T_SSH=$(date +%s)
  [ "$answer" = "$(printf 'aarch64\naarch64')" ] ||
    die "the VM did not answer SSH with aarch64 (got '$answer'): $(tail -20 "$WORK/verify-console.log")"
  # shellcheck disable=SC2016  # expanded in the VM
  docker=$("${SSH[@]}" 'for i in $(seq 1 60); do docker version --format "{{.Server.Arch}}" 2>/dev/null && exit 0; sleep 2; done; exit 1') ||
    die "dockerd did not answer in the VM: $("${SSH[@]}" 'systemctl status docker --no-pager' 2>&1 | tail -20)"
  [ "$docker" = arm64 ] || die "dockerd in the VM reports architecture '$docker', not arm64"
  T_DOCKER=$(date +%s)
  "${SSH[@]}" 'systemctl poweroff' || true
  for _ in $(seq 1 60); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 2; done
  kill "$QEMU_PID" 2>/dev/null || true
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=""
  rm -f "$WORK/verify.qcow2"
}

: recipe
SUITE=bookworm
DISK_SIZE=6G
# Beyond mmdebstrap's apt variant: a booting system (systemd, udev, the kernel, its modules' tools), what
# Ansible needs (python3, python3-apt, sshd, sudo), and what the build_host role installs with its defaults on
# Debian (docker.io, qemu-user-static, python3-requests), so a role run in the VM installs nothing.
# busybox-static is the initramfs' shell; netbase gives iptables (dockerd's rules) /etc/protocols. AppArmor is
# off on the kernel command line (docker.io recommends the apparmor package, left out to keep the image small).
PACKAGES=systemd-sysv,udev,dbus,kmod,netbase,procps,linux-image-arm64,busybox-static,iproute2,openssh-server,python3,python3-apt,sudo,docker.io,qemu-user-static,python3-requests,ca-certificates
CMDLINE="console=ttyAMA0 panic=-1 net.ifnames=0 apparmor=0 rdinit=/init"
rm -rf "$WORK"
mkdir -p "$WORK"
START=$(date +%s)

# --- 1. the root file system, built here with QEMU user emulation -----------------------------------
ssh-keygen -q -t ed25519 -N "" -C archfleet-arm64-vm -f "$WORK/id_ed25519"
binfmt_take
T_LOCKED=$(date +%s)
# What the customize hook runs in the finished tree (chroot, arm64 shell under QEMU user emulation).
cat >"$WORK/configure.sh" <<'EOF'
echo archfleet-arm64 >/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 archfleet-arm64\n::1 localhost ip6-localhost ip6-loopback\n' >/etc/hosts
printf '/dev/vda / ext4 defaults 0 0\n' >/etc/fstab
# QEMU user networking: the guest is 10.0.2.15, the host 10.0.2.2, the DNS forwarder 10.0.2.3 (static: no DHCP wait).
mkdir -p /etc/systemd/network
printf '[Match]\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n' >/etc/systemd/network/10-eth0.network
printf 'nameserver 10.0.2.3\n' >/etc/resolv.conf
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' >/etc/ssh/sshd_config.d/archfleet.conf
mkdir -p -m 700 /root/.ssh
mv /root/authorized_keys.archfleet /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
systemctl enable systemd-networkd.service ssh.service docker.service
# Nothing on a timer, nothing waiting for a network or a terminal that will not come.
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
  systemd-networkd-wait-online.service getty@tty1.service serial-getty@ttyAMA0.service
# A fixed machine ID: no first-boot presets, and every overlay boots the same way.
echo 5ad1f0a3c2e84b7d9e6f1a2b3c4d5e6f >/etc/machine-id
EOF
log "mmdebstrap --architectures=arm64 $SUITE from $MIRROR (log: $WORK/mmdebstrap.log)"
# shellcheck disable=SC2016  # $1 is the hooks' own argument (the root), expanded by mmdebstrap's shell
# update-initramfs is diverted to /bin/true before any package is configured; the apt lists are kept (the VM's
# apt then needs only the archive's InRelease, which is kept too: see harness/arm64_vm.py).
nice -n 10 mmdebstrap --mode=root --architectures=arm64 --variant=apt --include="$PACKAGES" \
  --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Retries "3"' --skip=cleanup/apt/lists \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && ln -s /bin/true "$1/usr/sbin/update-initramfs"' \
  --customize-hook='mkdir -p "'"$WORK"'/apt" && cp -p "$1"/var/lib/apt/lists/*_InRelease "'"$WORK"'/apt/"' \
  --customize-hook='cp "'"$WORK"'/id_ed25519.pub" "$1/root/authorized_keys.archfleet" && cp "'"$WORK"'/configure.sh" "$1/tmp/archfleet-configure"' \
  --customize-hook='chroot "$1" /bin/sh -eu /tmp/archfleet-configure && rm "$1/tmp/archfleet-configure"' \
  "$SUITE" "$WORK/root" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 || die "mmdebstrap failed: $(tail -30 "$WORK/mmdebstrap.log")"
binfmt_restore
T_ROOTFS=$(date +%s)

# --- the busybox initramfs: the kernel's modules for a virtio-blk ext4 root, then systemd ----------
ROOT="$WORK/root"
KVER=$(ls "$ROOT/lib/modules")
depmod -b "$ROOT" "$KVER"
mkdir -p "$WORK/initramfs"/{bin,dev,proc,sys,newroot,modules}
cp "$ROOT/bin/busybox" "$WORK/initramfs/bin/busybox"
for module in virtio_pci virtio_blk crc32c_generic ext4; do
  modprobe -d "$ROOT" -S "$KVER" --show-depends "$module" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$WORK/initramfs/modules/"
  basename "$ko" >>"$WORK/initramfs/modules/order"
done
cat >"$WORK/initramfs/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for ko in $(cat /modules/order); do insmod /modules/$ko || echo "initramfs: insmod $ko failed"; done
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.2; done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
chmod 755 "$WORK/initramfs/init"
(cd "$WORK/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.img"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
echo "$CMDLINE" >"$WORK/cmdline"

# --- 2. ext4, then qcow2 ---------------------------------------------------------------------------
log "mke2fs -d ($DISK_SIZE, sparse), qcow2"
mke2fs -q -t ext4 -L archfleet-root -d "$ROOT" "$WORK/root.img" "$DISK_SIZE"
qemu-img convert -O qcow2 "$WORK/root.img" "$WORK/root.qcow2"
rm -rf "$ROOT" "$WORK/root.img" "$WORK/initramfs"
T_IMAGE=$(date +%s)

: end of recipe

log "verification boot"
verify_boot

{
  echo "recipe $HASH, kernel $KVER, built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "waited for the binfmt_misc lock: $((T_LOCKED - START)) s"
  echo "root file system (mmdebstrap, download included, QEMU user emulation): $((T_ROOTFS - T_LOCKED)) s"
  echo "initramfs, ext4 and qcow2: $((T_IMAGE - T_ROOTFS)) s"
  echo "verification boot to SSH: $((T_SSH - T_BOOT)) s, to dockerd answering: $((T_DOCKER - T_BOOT)) s"
  echo "total: $((T_DOCKER - START)) s"
} >"$WORK/build.log"
cat "$WORK/build.log" >&2
touch "$WORK/ready"
mv "$WORK" "$DIR"
for old in "$CACHE"/vm/debian12-arm64-*; do
  [ "$old" = "$DIR" ] || rm -rf "$old"
done
echo "$DIR"
