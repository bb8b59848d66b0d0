#!/usr/bin/python3
"""Verify every DKIM signature of a message with dkimpy (Debian's
python3-dkim, with python3-nacl for Ed25519), an implementation
independent of the hub's.

Usage: dkim_verify.py MESSAGE_FILE RECORDS_JSON
RECORDS_JSON maps DNS names ("sel._domainkey.example.org") to TXT values;
no other DNS is asked. Prints one line per signature, "d=… s=… a=… pass"
or "… fail", and exits 0 only when there is at least one signature and
every one passes.
"""
import json
import sys

import dkim

message = open(sys.argv[1], "rb").read()
records = json.load(open(sys.argv[2]))


def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    value = records.get(name.rstrip("."))
    return value.encode() if value is not None else None


d = dkim.DKIM(message)
count = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
ok = count > 0
for i in range(count):
    try:
        passed = d.verify(idx=i, dnsfunc=dnsfunc)
    except dkim.DKIMException as e:
        print("signature %d: %s fail" % (i, e))
        ok = False
        continue
    sig = d.signature_fields
    print(
        "d=%s s=%s a=%s %s"
        % (
            sig.get(b"d", b"?").decode(),
            sig.get(b"s", b"?").decode(),
            sig.get(b"a", b"?").decode(),
            "pass" if passed else "fail",
        )
    )
    ok = ok and passed
sys.exit(0 if ok else 1)
