#!/bin/bash
# Boot the image a user flashes — the release variant, no test overlay —
# under QEMU and check it from the host only, through QEMU's network:
#   sudo image-build/release-boot.sh [arm64|amd64] [--raspi3b]
# Builds it (build.sh ARCH), boots it on a copy-on-write disk larger than
# the image (as a card is), and waits until the hub answers on its ports
# through port forwarding: plain HTTP sends /setup to HTTPS, which shows
# the setup page; IMAP (TLS) and SMTP submission greet; SSH offers host
# keys. Then it pulls the plug and reads the disk: the data partition
# grew, HUB-SETUP.txt is on the firmware partition (arm64: the FAT
# partition RASPIFIRM; amd64, which has none: /boot/firmware) with the
# fingerprint of the certificate the hub served and its setup code, and
# hub.toml lost its passwords.
# --raspi3b (arm64): boot the same image on QEMU's Raspberry Pi 3 model
# instead of `virt`: the kernel, initramfs, device tree and command line
# from the image's FAT partition, as the Pi's firmware takes them, the
# image as its SD card, and a USB network adapter for the host's checks.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=arm64
RASPI=0
for a in "$@"; do
    case "$a" in
        arm64|amd64) ARCH=$a ;;
        --raspi3b) RASPI=1 ;;
        *) echo "usage: $0 [arm64|amd64] [--raspi3b]" >&2; exit 2 ;;
    esac
done
[ "$RASPI" = 0 ] || [ "$ARCH" = arm64 ] || { echo "release-boot.sh: --raspi3b is for arm64" >&2; exit 2; }
OUT=${OUT:-$HERE/out}
NAME=cairn-$ARCH
HTTP=${HTTP:-18180}
HTTPS=${HTTPS:-18143}
IMAPS=${IMAPS:-18193}
SUBMIT=${SUBMIT:-18187}
SSH=${SSH:-18122}
WAIT=${WAIT:-1500}
die() { echo "release-boot.sh: $*" >&2; exit 1; }

"$HERE/build.sh" "$ARCH"
# shellcheck source=image-build/lib.sh
. "$HERE/lib.sh"
need_qemu "$ARCH"
for t in openssl:openssl ssh-keyscan:openssh-client mtype:mtools debugfs:e2fsprogs sfdisk:fdisk; do
    command -v "${t%%:*}" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${t#*:}"
done

variant=$NAME-release
[ "$RASPI" = 1 ] && variant=$NAME-raspi3b
disk=$OUT/$variant.qcow2
log=$OUT/$variant.serial.log
work=$(mktemp -d "${TMPDIR:-/var/tmp}/cairn-release.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -f "$disk" "$log"
# A card larger than the image (a power of two: QEMU's SD cards must be).
qemu-img create -q -f qcow2 -F raw -b "$OUT/$NAME.img" "$disk" 4G

# offset N IMAGE: the byte offset of partition N.
offset() { sfdisk -J "$2" | python3 -c "import json,sys; t=json.load(sys.stdin)['partitiontable']; print(t['partitions'][$1-1]['start']*t.get('sectorsize',512))"; }

fwd="hostfwd=tcp:127.0.0.1:$HTTP-:80,hostfwd=tcp:127.0.0.1:$HTTPS-:443,hostfwd=tcp:127.0.0.1:$IMAPS-:993"
fwd="$fwd,hostfwd=tcp:127.0.0.1:$SUBMIT-:587,hostfwd=tcp:127.0.0.1:$SSH-:22"
if [ "$RASPI" = 1 ]; then
    # What the Pi's firmware loads, from the FAT partition of the image.
    # config.txt names the kernel and the initramfs (`kernel=…`,
    # `initramfs … followkernel`); with upstream_kernel=1 the Pi 3 B's
    # device tree is the upstream bcm2837-rpi-3-b.dtb.
    fat="$OUT/$NAME.img@@$(offset 1 "$OUT/$NAME.img")"
    mcopy -n -i "$fat" ::config.txt ::cmdline.txt "$work/" || die "no config.txt or cmdline.txt on the firmware partition"
    kernel=$(tr -d '\r' < "$work/config.txt" | sed -n 's/^kernel=//p' | tail -1)
    initramfs=$(tr -d '\r' < "$work/config.txt" | sed -n 's/^initramfs[ =]\([^ ]*\).*/\1/p' | tail -1)
    [ -n "$kernel" ] && [ -n "$initramfs" ] || die "config.txt names no kernel= or initramfs"
    mcopy -n -i "$fat" "::$kernel" "$work/vmlinuz" && mcopy -n -i "$fat" "::$initramfs" "$work/initrd.img" \
        && mcopy -n -i "$fat" ::bcm2837-rpi-3-b.dtb "$work/" \
        || die "the firmware partition lacks $kernel, $initramfs or bcm2837-rpi-3-b.dtb: $(mdir -b -i "$fat" :: | tr '\n' ' ')"
    cmdline=$(tr -d '\r\n' < "$work/cmdline.txt")
    echo "== raspi3b: $kernel, $initramfs, bcm2837-rpi-3-b.dtb and cmdline.txt from the firmware partition: $cmdline"
    # The Pi 3's console is its mini UART (ttyS1): QEMU's second serial
    # port. The network is a USB adapter (the model has no Ethernet).
    qemu=(qemu-system-aarch64 -M raspi3b -m 1024 -smp 4
          -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -dtb "$work/bcm2837-rpi-3-b.dtb"
          -append "$cmdline" -drive if=sd,file="$disk",format=qcow2
          -device usb-net,netdev=n0 -serial null -serial "file:$log")
else
    vm_machine "$ARCH" "$disk"
    qemu+=(-kernel "$OUT/$NAME.vmlinuz" -initrd "$OUT/$NAME.initrd" -serial "file:$log")
fi
qemu+=(-display none -no-reboot -netdev "user,id=n0,$fwd")

echo "== booting $variant under QEMU (serial log: $log); checks from the host through port forwarding"
start=$(date +%s)
timeout $((WAIT + 300)) "${qemu[@]}" < /dev/null &
vm=$!
said() { echo "== host: $1, after $(( $(date +%s) - start )) s"; }
web=no imap=no smtp=no ssh=no
while kill -0 "$vm" 2>/dev/null && [ $(( $(date +%s) - start )) -lt "$WAIT" ]; do
    if [ "$web" = no ]; then
        code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "http://127.0.0.1:$HTTP/setup" || true)
        if [ "$code" = "308 https://127.0.0.1/setup" ] \
            && curl -sk --max-time 5 "https://127.0.0.1:$HTTPS/setup" | grep -qi "setup code"; then
            web=yes; said "the setup page is sent from HTTP to HTTPS and answers there"
        fi
    fi
    if [ "$imap" = no ]; then
        greeting=$(timeout 10 openssl s_client -connect "127.0.0.1:$IMAPS" -quiet < /dev/null 2>/dev/null | head -1 || true)
        case "$greeting" in "* OK"*) imap=yes; said "IMAP (TLS) greets: ${greeting:0:40}…" ;; esac
    fi
    if [ "$smtp" = no ]; then
        greeting=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SUBMIT && head -1 <&3" 2>/dev/null || true)
        case "$greeting" in "220 "*) smtp=yes; said "SMTP submission greets: ${greeting:0:40}…" ;; esac
    fi
    if [ "$ssh" = no ] && [ -n "$(ssh-keyscan -T 5 -p "$SSH" 127.0.0.1 2>/dev/null)" ]; then
        ssh=yes; said "SSH offers its host keys"
    fi
    [ "$web$imap$smtp$ssh" = yesyesyesyes ] && break
    sleep 3
done
served=""
if [ "$web" = yes ]; then
    served=$(openssl s_client -connect "127.0.0.1:$HTTPS" < /dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 \
        | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
fi
# Pull the plug, as a camp does before taking the card out to read
# HUB-SETUP.txt: what first boot wrote must be on the disk already (the
# release image has no power-button handler for a clean shutdown anyway).
kill "$vm" 2>/dev/null || true
wait "$vm" 2>/dev/null || true
echo "== $(( $(date +%s) - start )) s in QEMU"
[ "$web$imap$smtp$ssh" = yesyesyesyes ] || {
    tail -30 "$log" >&2
    die "within $WAIT s the hub did not answer on every port from the host: web=$web imap=$imap smtp=$smtp ssh=$ssh (serial log: $log)"
}

# The disk as first boot left it.
raw=$work/disk.raw
qemu-img convert -O raw "$disk" "$raw"
if [ "$ARCH" = arm64 ]; then
    datapart=3
    mtype -i "$raw@@$(offset 1 "$raw")" ::HUB-SETUP.txt > "$work/setup.txt" 2>/dev/null || die "no HUB-SETUP.txt on the FAT partition"
    mtype -i "$raw@@$(offset 1 "$raw")" ::hub.toml > "$work/hub.toml" 2>/dev/null || die "no hub.toml on the FAT partition"
else
    datapart=2
    dd if="$raw" of="$work/root.ext4" bs=1M iflag=skip_bytes skip="$(offset 1 "$raw")" count=1024 status=none
    # As the next boot would: replay the journal (the plug was pulled, so
    # what was synced may be only there), then read.
    e2fsck -y -E journal_only "$work/root.ext4" > /dev/null 2>&1 || true
    debugfs -R "cat /boot/firmware/HUB-SETUP.txt" "$work/root.ext4" > "$work/setup.txt" 2>/dev/null
    debugfs -R "cat /boot/firmware/hub.toml" "$work/root.ext4" > "$work/hub.toml" 2>/dev/null
    [ -s "$work/setup.txt" ] || die "no /boot/firmware/HUB-SETUP.txt"
fi
size=$(sfdisk -J "$raw" | python3 -c "import json,sys; t=json.load(sys.stdin)['partitiontable']; print(t['partitions'][$datapart-1]['size']*t.get('sectorsize',512)//1048576)")
[ "$size" -gt 1000 ] || die "the data partition was not grown ($size MiB)"
echo "== disk: the data partition grew to $size MiB"
tr -d '\r' < "$work/setup.txt" > "$work/setup.lf"
grep -q "https://hub.camp/setup" "$work/setup.lf" || die "HUB-SETUP.txt does not send the admin to https://hub.camp/setup"
grep -qi "setup code" "$work/setup.lf" || die "HUB-SETUP.txt has no setup code"
written=$(tr -d ': \n' < "$work/setup.lf" | tr 'A-F' 'a-f' | grep -o "$served" | head -1 || true)
[ -n "$served" ] && [ "$written" = "$served" ] \
    || die "the certificate served on 443 (SHA-256 $served) is not the one HUB-SETUP.txt names"
echo "== disk: HUB-SETUP.txt names the certificate served on 443 (SHA-256 ${served:0:16}…) and the setup code"
! grep -q '^ *wifi_password *= *"..*"' "$work/hub.toml" || die "hub.toml still holds the Wi-Fi password"
echo "== disk: hub.toml holds no password"
echo "== PASS ($variant)"
