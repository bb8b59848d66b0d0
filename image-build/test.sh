#!/bin/bash
# Boot the test image under QEMU and run its smoke test:
#   sudo image-build/test.sh [arm64|amd64]
# Builds it first (build.sh --test), boots it with its own kernel on
# `-M virt` (arm64, emulated: no KVM needed) or `-M q35` (amd64), on a
# copy-on-write disk larger than the image so first boot grows the data
# partition. Inside, smoke.sh plays a phone on a mac80211_hwsim radio and
# has the hub open a LoRa modem (a simulated RNode on the host, on a USB
# serial adapter), set up as an admin does on the Radio, Peers and Uplinks
# pages, and exchange mail over it with a base hub on the host
# (base-hub.sh): the phone writes to camper@base.camp, who answers;
# outside, the admin page is fetched through port forwarding (plain HTTP
# must send it to HTTPS, which must serve it). Then the
# same disk boots a second time, and smoke.sh checks what a reboot must
# keep (keys, certificate, settings, the account and its mail). Then the
# release image (no test overlay) boots as a user flashes it, checked from
# the host (release-boot.sh), and for arm64 also on QEMU's Raspberry Pi 3
# model. Fails loudly on any step; the serial logs are kept in
# image-build/out/. With --record, a pass is written to image-build/tested
# (CI then skips this variant until an input of the image changes).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=arm64
RECORD=0
for a in "$@"; do
    case "$a" in
        arm64|amd64) ARCH=$a ;;
        --record) RECORD=1 ;;
        *) echo "usage: $0 [arm64|amd64] [--record]" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-$HERE/out}
NAME=cairn-$ARCH-test
PORT=${PORT:-18080}
TLSPORT=${TLSPORT:-18443}

"$HERE/build.sh" "$ARCH" --test
# shellcheck source=image-build/lib.sh
. "$HERE/lib.sh"
need_qemu "$ARCH"

disk=$OUT/$NAME.qcow2
log=$OUT/$NAME.serial.log
log2=$OUT/$NAME.serial2.log
stick=$OUT/$NAME.stick.img
rm -f "$disk" "$log" "$log2" "$stick"
qemu-img create -q -f qcow2 -F raw -b "$OUT/$NAME.img" "$disk" 3G
# A 32 MB FAT USB stick, plugged in at boot.
mkfs.vfat -C -n CAMPSTICK "$stick" 32768 >/dev/null
# A LoRa modem: an RNode of `cairn radio sim` (built for this machine) on
# a pseudo-terminal, plugged into the VM as a USB serial adapter (QEMU's
# usb-serial, an FTDI chip: /dev/ttyUSB0 inside). It runs for both boots.
radios=$OUT/$NAME.radios
rm -rf "$radios"
(cd "$HERE/.." && cargo build --locked --bin cairn >&2)
"$HERE/../target/debug/cairn" radio sim --modem rnode --radios vm,host --dir "$radios" \
    < /dev/null > "$OUT/$NAME.radio-sim.log" 2>&1 &
sim=$!
base=$OUT/$NAME.base
trap 'kill "$sim" 2>/dev/null || true; "$HERE/base-hub.sh" stop "$base"' EXIT
for i in $(seq 50); do [ -e "$radios/vm" ] && break; sleep 0.2; done
[ -e "$radios/vm" ] || { echo "test.sh: cairn radio sim made no modem; see $OUT/$NAME.radio-sim.log" >&2; exit 1; }
# The base hub at the other end of the radio; its card goes in on the
# USB stick, as a camp would carry it.
"$HERE/base-hub.sh" start "$base" "$radios/host"
mcopy -i "$stick" "$base/card" ::/base-card.txt
fwd="hostfwd=tcp:127.0.0.1:$PORT-:80,hostfwd=tcp:127.0.0.1:$TLSPORT-:443"
vm_machine "$ARCH" "$disk"
qemu+=(-device qemu-xhci -drive if=none,id=stick,file="$stick",format=raw -device usb-storage,drive=stick
       -chardev serial,id=lora,path="$(readlink -f "$radios/vm")" -device usb-serial,chardev=lora
       -nographic -no-reboot -kernel "$OUT/$NAME.vmlinuz" -initrd "$OUT/$NAME.initrd"
       -netdev "user,id=n0,$fwd")

# boot LOG: one boot of the disk until the VM powers itself off; the host
# meanwhile fetches the admin setup page through port forwarding, and the
# base hub takes the VM's card when it is printed and answers its mail.
boot() {
    echo "== booting $NAME under QEMU (serial log: $1)"
    local start vm code card
    start=$(date +%s)
    timeout 1800 "${qemu[@]}" > "$1" 2>&1 < /dev/null &
    vm=$!
    host=fail
    while kill -0 "$vm" 2>/dev/null; do
        # From outside the hub, plain HTTP sends the admin pages to HTTPS.
        if [ "$host" = fail ]; then
            code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "http://127.0.0.1:$PORT/setup" || true)
            if [ "$code" = "308 https://127.0.0.1/setup" ] \
                && curl -skL --max-time 5 "https://127.0.0.1:$TLSPORT/setup" | grep -qi -e "setup code" -e "admin password"; then
                host=pass
                echo "== host: the setup page is sent to HTTPS and answers there (or, once the admin password is set, sends on to the login page), through port forwarding, after $(( $(date +%s) - start )) s"
            fi
        fi
        if [ ! -f "$base/peered" ]; then
            card=$(tr -d '\r' < "$1" | sed -n 's/.*SMOKE: card //p' | head -1)
            if [ -n "$card" ]; then
                "$HERE/base-hub.sh" peer "$base" "$card" && touch "$base/peered"
                echo "== host: the base hub added the VM's hub as a peer with a LoRa uplink, after $(( $(date +%s) - start )) s"
            fi
        elif [ ! -f "$base/answered" ] && "$HERE/base-hub.sh" answer "$base"; then
            echo "== host: camper@base.camp got the VM's mail by radio and answered $(cat "$base/answered"), after $(( $(date +%s) - start )) s"
        fi
        sleep 3
    done
    wait "$vm" || true
    grep 'SMOKE:' "$1" || true
    echo "== $(( $(date +%s) - start )) s in QEMU"
    grep -q 'SMOKE: RESULT PASS' "$1" || { echo "test.sh: the smoke test inside the VM did not pass; see $1" >&2; tail -40 "$1" >&2; exit 1; }
    [ "$host" = pass ] || { echo "test.sh: the admin setup page never answered: http://127.0.0.1:$PORT/setup last said '$code' (want '308 https://127.0.0.1/setup'), then https://127.0.0.1:$TLSPORT/setup (want the setup or the login page)" >&2; exit 1; }
}
boot "$log"
boot "$log2"
[ -f "$base/answered" ] || { echo "test.sh: the base hub never got the VM's mail by radio; see $base/serve.log and $OUT/$NAME.radio-sim.log" >&2; exit 1; }
grep -q 'SMOKE: second boot' "$log2" || { echo "test.sh: the second boot did not run the reboot checks; see $log2" >&2; exit 1; }
echo "== PASS (the test image)"
# The image a user flashes, checked from outside only; for arm64 also on
# QEMU's Raspberry Pi 3 model.
OUT=$OUT "$HERE/release-boot.sh" "$ARCH"
if [ "$ARCH" = arm64 ]; then OUT=$OUT "$HERE/release-boot.sh" arm64 --raspi3b; fi
echo "== PASS"
if [ "$RECORD" = 1 ]; then "$HERE/tree-hash" --record "$ARCH"; fi
