#!/bin/bash
# Build the cairn SD-card image: sudo image-build/build.sh [arm64|amd64] [--test]
#
#   arm64 (default)  Raspberry Pi 3/4/400: out/cairn-arm64.img.xz (+ .bmap,
#                    .sha256, .manifest)
#   amd64            the same system for x86_64, to check units and
#                    configuration quickly under QEMU (no Pi firmware)
#   --test           also busybox, wpasupplicant, curl and the smoke test
#                    (test.sh boots it under QEMU)
#
# Debian trixie packages only, from the build machine's own apt mirror
# (MIRROR / SECURITY_MIRROR override it). No loop devices or mounts:
# mmdebstrap makes the root file system, genimage the partitions. The
# package set is cached in image-build/cache by its list, so a rebuild
# only redoes cairn and the overlay. Needs root and a Debian 12/13 host;
# it installs what it lacks (qemu-user-static from bookworm-backports).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=image-build/lib.sh
. "$HERE/lib.sh"
ARCH=arm64
TEST=0
for a in "$@"; do
    case "$a" in
        arm64|amd64) ARCH=$a ;;
        --test) TEST=1 ;;
        *) echo "usage: $0 [arm64|amd64] [--test]" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-$HERE/out}
CACHE=${CACHE:-$HERE/cache}
SUITE=trixie
NAME=cairn-$ARCH
[ "$TEST" = 1 ] && NAME=$NAME-test

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap --mode=root and genimage keep file ownership that way): sudo $0 $*"

# --------------------------------------------------------------- host tools
need() { command -v "$1" >/dev/null 2>&1; }
host_prepare() {
    missing=
    for t in mmdebstrap:mmdebstrap genimage:genimage mkdosfs:dosfstools mcopy:mtools \
             mke2fs:e2fsprogs sfdisk:fdisk xz:xz-utils zstd:zstd bmaptool:bmap-tools \
             qemu-img:qemu-utils; do
        need "${t%%:*}" || missing="$missing ${t#*:}"
    done
    if [ "$ARCH" = arm64 ]; then
        need aarch64-linux-gnu-gcc || missing="$missing gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
        need arch-test || missing="$missing arch-test binfmt-support"
    fi
    if [ -n "$missing" ]; then
        say "installing:$missing"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
    fi
    if [ "$ARCH" = arm64 ] && ! need qemu-aarch64-static && ! [ -e /usr/bin/qemu-aarch64 ]; then
        install_qemu qemu-user-static
    fi
    if [ "$ARCH" = arm64 ]; then
        mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
        [ -x /lib/systemd/systemd-binfmt ] && /lib/systemd/systemd-binfmt || update-binfmts --enable >/dev/null 2>&1 || true
        arch-test arm64 >/dev/null || die "arm64 binaries do not run here (binfmt_misc with qemu-user-static): see image-build/README.md"
    fi
}

security_mirror() {
    echo "${SECURITY_MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' 'Label: Debian-Security' 'Identifier: Packages' | sort -u | head -1)}"
}

# ---------------------------------------------------------------- packages
PKGS=systemd-sysv,udev,kmod,initramfs-tools,zstd,wireless-regdb,iw,rfkill,hostapd,dnsmasq,openssh-server,dosfstools,parted,cloud-guest-utils,fake-hwclock,ca-certificates,iproute2,netbase,procps,less,util-linux,adduser
if [ "$ARCH" = arm64 ]; then
    PKGS=$PKGS,linux-image-arm64,raspi-firmware,firmware-brcm80211
    COMPONENTS="main non-free-firmware"
else
    PKGS=$PKGS,linux-image-amd64
    COMPONENTS="main"
fi
[ "$TEST" = 1 ] && PKGS=$PKGS,busybox,wpasupplicant,curl

# ------------------------------------------------------------------- cairn
build_cairn() {
    cd "$ROOT"
    if [ "$ARCH" = arm64 ]; then
        rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu \
            || rustup target add aarch64-unknown-linux-gnu
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
        AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
            cargo build --release --locked --target aarch64-unknown-linux-gnu --bin cairn >&2
        echo "$ROOT/target/aarch64-unknown-linux-gnu/release/cairn"
    else
        cargo build --release --locked --bin cairn >&2
        echo "$ROOT/target/release/cairn"
    fi
}

# ------------------------------------------------------------- base rootfs
# The Debian system without cairn, cached by everything that shapes it.
base_rootfs() {
    local key tarball archive security
    key=$( { echo "$ARCH $SUITE $PKGS $COMPONENTS"; sed -n '/^base_rootfs()/,/^}/p' "$HERE/build.sh"; } | sha256sum | cut -c1-16)
    tarball=$CACHE/base-$ARCH-$key.tar
    if [ -s "$tarball" ]; then
        say "base system from the cache: $tarball"
        echo "$tarball"; return
    fi
    mkdir -p "$CACHE"
    archive=$(mirror); security=$(security_mirror)
    [ -n "$archive" ] || die "no Debian archive in this machine's apt configuration: set MIRROR=http://…/debian"
    local sources=("deb $archive $SUITE $COMPONENTS" "deb $archive $SUITE-updates $COMPONENTS")
    [ -n "$security" ] && sources+=("deb $security $SUITE-security $COMPONENTS")
    # Set before the kernel package configures: the initramfs's fsck hook
    # cannot detect the root file system's type in a chroot.
    local hooks=(--essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo FSTYPE=ext4 > "$1/etc/initramfs-tools/conf.d/fstype"')
    if [ "$ARCH" = arm64 ]; then
        # Root by label, no CMA (Pi 4 headless), serial console on the Pi's UART.
        hooks+=(--customize-hook='sed -i -e "s/^#\?ROOTPART=.*/ROOTPART=LABEL=RASPIROOT/" -e "s/^#\?CMA=.*/CMA=0/" -e "s/^#\?CONSOLES=.*/CONSOLES=\"tty0 ttyS1,115200\"/" "$1/etc/default/raspi-firmware"')
        hooks+=(--customize-hook='chroot "$1" env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware')
    fi
    say "building the base system ($ARCH, $SUITE) from $archive"
    mmdebstrap --mode=root --architectures="$ARCH" --variant=minbase --include="$PKGS" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        "${hooks[@]}" "$SUITE" "$tarball.partial.tar" "${sources[@]}" >&2 \
        || { rm -f "$tarball.partial.tar"; die "mmdebstrap failed (see above)"; }
    mv "$tarball.partial.tar" "$tarball"
    echo "$tarball"
}

# ----------------------------------------------------------------- rootfs
# The base system plus cairn, the overlay and the units, in $WORK/rootfs.
customize() {
    local tarball=$1 binary=$2 rootfs=$WORK/rootfs
    rm -rf "$rootfs"; mkdir -p "$rootfs"
    tar -C "$rootfs" -xpf "$tarball"
    cp -a "$HERE/overlay/." "$rootfs/"
    [ "$TEST" = 1 ] && cp -a "$HERE/test-overlay/." "$rootfs/"
    install -m 0755 "$binary" "$rootfs/usr/bin/cairn"
    mkdir -p "$rootfs/var/lib/cairn" "$rootfs/boot/firmware" "$rootfs/media/usb"
    printf 'LABEL=RASPIROOT / ext4 rw,noatime 0 1\n' > "$rootfs/etc/fstab"
    [ "$ARCH" = arm64 ] && printf 'LABEL=RASPIFIRM /boot/firmware vfat rw,noatime 0 2\n' >> "$rootfs/etc/fstab"
    printf 'LABEL=CAMPDATA /var/lib/cairn ext4 rw,noatime,commit=60,nofail 0 2\n' >> "$rootfs/etc/fstab"
    echo cairn > "$rootfs/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 cairn\n10.42.0.1 hub.camp\n' > "$rootfs/etc/hosts"
    chroot "$rootfs" adduser --system --group --home /var/lib/cairn --no-create-home cairn >&2
    chroot "$rootfs" systemctl enable systemd-networkd cairn.service cairn-firstboot.service \
        cairn-growdata.service ssh-hostkeys-firstboot.service hostapd@wlan0.service \
        cairn-wifi.path >&2
    # hostapd@wlan0 starts when wlan0 appears; from multi-user.target it
    # would hold the boot for 90 s on a Pi whose Wi-Fi comes up late.
    rm -f "$rootfs/etc/systemd/system/multi-user.target.wants/hostapd@wlan0.service"
    chroot "$rootfs" systemctl disable apt-daily.timer apt-daily-upgrade.timer >&2 || true
    [ "$TEST" = 1 ] && chroot "$rootfs" systemctl enable smoke-test.service >&2
    # Made on the device, never shipped.
    rm -f "$rootfs"/etc/ssh/ssh_host_*_key* "$rootfs/var/lib/cairn/"* 2>/dev/null || true
    echo uninitialized > "$rootfs/etc/machine-id"
    check "$rootfs"
    chroot "$rootfs" dpkg-query -W > "$WORK/manifest"
}

# ------------------------------------------------------------------ checks
check() {
    local rootfs=$1
    say "checks in the image's root file system"
    chroot "$rootfs" /usr/sbin/dnsmasq --test >&2
    chroot "$rootfs" /usr/bin/cairn --version >&2
    chroot "$rootfs" /usr/sbin/sshd -t -f /etc/ssh/sshd_config 2>&1 | grep -v "no hostkeys" >&2 || true
    mount -t proc proc "$rootfs/proc"
    local units=(cairn.service cairn-firstboot.service cairn-growdata.service ssh-hostkeys-firstboot.service
        cairn-wifi.path cairn-wifi.service)
    [ "$TEST" = 1 ] && units+=(smoke-test.service)
    local out
    out=$(cd "$rootfs/etc/systemd/system" && chroot "$rootfs" systemd-analyze verify "${units[@]/#//etc/systemd/system/}" 2>&1 | grep -v -e "man page" -e "^$" || true)
    umount "$rootfs/proc"
    if [ -n "$out" ]; then
        printf '%s\n' "$out" >&2
        die "systemd-analyze verify found problems in the units (above)"
    fi
}

# ------------------------------------------------------------------- image
image() {
    local rootfs=$WORK/rootfs img
    say "partitions and image"
    rm -rf "$WORK/gi-tmp" "$WORK/gi-in" "$WORK/gi-out"; mkdir -p "$WORK/gi-in" "$WORK/gi-out"
    genimage --config "$HERE/genimage/$ARCH.cfg" --rootpath "$rootfs" --tmppath "$WORK/gi-tmp" \
        --inputpath "$WORK/gi-in" --outputpath "$WORK/gi-out" >&2
    mkdir -p "$OUT"
    img=$OUT/$NAME.img
    mv "$WORK/gi-out/cairn-$ARCH.img" "$img"
    # For QEMU: the kernel and initramfs the image boots with.
    cp "$rootfs"/boot/vmlinuz-* "$OUT/$NAME.vmlinuz"
    cp "$rootfs"/boot/initrd.img-* "$OUT/$NAME.initrd"
    cp "$WORK/manifest" "$OUT/$NAME.manifest"
    bmaptool create -o "$img.bmap" "$img" >&2
    rm -f "$img.xz"
    xz -T0 -k -3 "$img"
    (cd "$OUT" && sha256sum "$NAME.img.xz" > "$NAME.img.xz.sha256")
    say "made $img.xz ($(du -h "$img.xz" | cut -f1)); manifest $OUT/$NAME.manifest"
}

host_prepare
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/cairn-image.XXXXXX")
trap 'mountpoint -q "$WORK/rootfs/proc" && umount "$WORK/rootfs/proc"; rm -rf "$WORK"' EXIT
binary=$(build_cairn)
tarball=$(base_rootfs)
customize "$tarball" "$binary"
image
