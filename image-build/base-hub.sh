#!/bin/bash
# The hub at the other end of the radio in the QEMU test: a cairn on the
# build machine ("base", domain base.camp, the account camper@base.camp)
# on the `host` modem of `cairn radio sim`, whose `vm` modem is plugged
# into the VM as a USB serial adapter. test.sh drives it:
#   base-hub.sh start DIR RADIO     make and start it; DIR/card is its card
#   base-hub.sh peer DIR CARD       add the hub in the VM as a peer, with a
#                                   lora uplink (the answer goes back by radio)
#   base-hub.sh answer DIR          if camper has the VM's message (UID 1),
#                                   answer its sender once; exit 0 when answered
#   base-hub.sh stop DIR
# Only loopback: its mail ports are 127.0.0.1:$BASE_PORT+…, nothing
# listens for links (its card has no addresses: radio only).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CAIRN=${CAIRN:-$HERE/../target/debug/cairn}
BASE_PORT=${BASE_PORT:-18500}
cmd=${1:?usage: base-hub.sh start|peer|answer|stop DIR …}
dir=${2:?usage: base-hub.sh $cmd DIR …}
submission=127.0.0.1:$((BASE_PORT + 87))
imaps=127.0.0.1:$((BASE_PORT + 93))
base() { "$CAIRN" --config "$dir/cairn.toml" "$@"; }

case "$cmd" in
start)
    radio=${3:?usage: base-hub.sh start DIR RADIO}
    rm -rf "$dir"
    mkdir -p "$dir"
    cat > "$dir/cairn.toml" <<EOF
data_dir = "$dir/data"
[hub]
name = "base"
domains = ["base.camp"]
hostnames = ["127.0.0.1"]
[listen]
smtp_submission_tls = []
smtp_submission = ["$submission"]
smtp_mx = []
imap_tls = ["$imaps"]
imap = []
http = ["127.0.0.1:$((BASE_PORT + 80))"]
https = []
link = []
[radio]
port = "$radio"
modem = "rnode"
region = "eu868"
sf = 7
EOF
    base account add camper@base.camp > "$dir/password"
    base node card > "$dir/card"
    "$CAIRN" --config "$dir/cairn.toml" serve > "$dir/serve.log" 2>&1 < /dev/null &
    echo $! > "$dir/pid"
    for _ in $(seq 100); do
        grep -q "radio listening" "$dir/serve.log" && exit 0
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
        sleep 0.3
    done
    echo "base-hub.sh: the base hub did not open its radio at $radio; see $dir/serve.log" >&2
    tail -20 "$dir/serve.log" >&2
    exit 1
    ;;
peer)
    card=${3:?usage: base-hub.sh peer DIR CARD}
    name=$(printf '%s' "$card" | sed -n 's/.*;name=\([^;]*\).*/\1/p')
    [ -n "$name" ] || { echo "base-hub.sh: no name in the card '$card'" >&2; exit 1; }
    # Its card names its link addresses on the camp's Wi-Fi, which the
    # host cannot reach: that link runs only when asked.
    base peer add "$card" --schedule manual
    base uplink add "$name" lora --schedule always
    ;;
answer)
    [ -f "$dir/answered" ] && exit 0
    pass=$(head -1 "$dir/password" | awk '{print $NF}')
    got=$(curl -s -k "imaps://$imaps/INBOX;UID=1" --user "camper@base.camp:$pass" || true)
    from=$(printf '%s' "$got" | tr -d '\r' | sed -n 's/^From: .*<\(.*\)>.*/\1/p' | head -1)
    [ -n "$from" ] || exit 1
    printf 'From: <camper@base.camp>\r\nTo: <%s>\r\nSubject: [...]\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nwwQFBQUF0hQJCQkJCQkJCQkJCQkJCQkJCQkJCQ==\r\n-----END PGP MESSAGE-----\r\n\r\n--b--\r\n' "$from" > "$dir/answer.eml"
    curl -s --ssl-reqd -k "smtp://$submission" --mail-from camper@base.camp --mail-rcpt "$from" \
        --user "camper@base.camp:$pass" -T "$dir/answer.eml"
    echo "$from" > "$dir/answered"
    ;;
stop)
    [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    ;;
*)
    echo "usage: base-hub.sh start|peer|answer|stop DIR …" >&2
    exit 2
    ;;
esac
