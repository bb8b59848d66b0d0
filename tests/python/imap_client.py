#!/usr/bin/env python3
"""What Thunderbird- and K-9-style clients do that Delta Chat does not,
with Python's imaplib against cairn. Usage: imap_client.py PORT USER PASSWORD
(implicit TLS on 127.0.0.1). Exits 0 when every check passed; prints what
failed otherwise."""
import imaplib
import re
import ssl
import sys

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
imaplib.Commands.setdefault("ENABLE", ("AUTH",))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=30)


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


typ, _ = m.login(user, password)
check(typ == "OK", "login")

MULTIPART = (
    b"From: Alice <alice@camp.example>\r\n"
    b"To: Bob <bob@camp.example>\r\n"
    b"Subject: Campfire tonight\r\n"
    b"Date: Wed, 25 Nov 2026 18:00:00 +0000\r\n"
    b"Message-ID: <fire@camp.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Bring marshmallows.\r\n"
    b"--b1\r\n"
    b"Content-Type: image/png\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"iVBORw0KGgo=\r\n"
    b"--b1--\r\n"
)

# APPEND with a synchronising literal (imaplib always sends {n}).
typ, data = m.append("INBOX", "(\\Flagged)", None, MULTIPART)
check(typ == "OK" and b"APPENDUID" in data[0], f"append: {data}")
typ, data = m.append("INBOX", None, None, b"Subject: second\r\n\r\nplain body\r\n")
check(typ == "OK", "second append")

typ, data = m.select("INBOX")
check(typ == "OK" and data[0] == b"2", f"select: {data}")

# BODYSTRUCTURE of a multipart message.
typ, data = m.fetch("1", "(BODYSTRUCTURE)")
bs = data[0].decode()
check('("TEXT" "PLAIN" ("CHARSET" "utf-8")' in bs and '"IMAGE" "PNG"' in bs and '"MIXED"' in bs,
      f"bodystructure: {bs}")
# ENVELOPE.
typ, data = m.fetch("1", "(ENVELOPE)")
env = data[0].decode()
check('"Campfire tonight"' in env and '"<fire@camp.example>"' in env and '"alice" "camp.example"' in env,
      f"envelope: {env}")

# Partial fetches and sections.
typ, data = m.fetch("1", "(BODY.PEEK[1])")
check(data[0][1] == b"Bring marshmallows.", f"part 1: {data}")
typ, data = m.fetch("1", "(BODY.PEEK[2.MIME])")
check(data[0][1].startswith(b"Content-Type: image/png"), f"part 2 MIME: {data}")
typ, data = m.fetch("1", "(BODY.PEEK[]<0.10>)")
check(data[0][1] == MULTIPART[:10] and b"BODY[]<0>" in data[0][0], f"partial: {data}")
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (FROM TO DATE MESSAGE-ID MIME-VERSION CONTENT-TYPE)])")
check(data[0][1] == b"Subject: Campfire tonight\r\n\r\n", f"fields not: {data}")
typ, data = m.fetch("2", "(RFC822.TEXT)")
check(data[0][1] == b"plain body\r\n", f"rfc822.text: {data}")
# A non-peek fetch sets \Seen.
typ, data = m.fetch("2", "(FLAGS)")
check(b"\\Seen" in data[0], f"seen after BODY[] fetch: {data}")

# SEARCH.
typ, data = m.search(None, "FLAGGED")
check(data == [b"1"], f"search flagged: {data}")
typ, data = m.search(None, 'SUBJECT "campfire" FROM alice')
check(data == [b"1"], f"search subject+from: {data}")
typ, data = m.search(None, "OR SEEN FLAGGED")
check(data == [b"1 2"], f"search or: {data}")
typ, data = m.search(None, "NOT SEEN")
check(data == [b"1"], f"search not: {data}")
typ, data = m.uid("SEARCH", None, "BODY", "marshmallows")
check(data == [b"1"], f"uid search body: {data}")
typ, data = m.search(None, "LARGER 100 SINCE 1-Jan-2020")
check(data == [b"1"], f"search larger/since: {data}")

# CONDSTORE: MODSEQ in FETCH, CHANGEDSINCE, UNCHANGEDSINCE.
typ, data = m.fetch("1:*", "(MODSEQ)")
modseqs = [int(x) for x in re.findall(rb"MODSEQ \((\d+)\)", b" ".join(data))]
check(len(modseqs) == 2, f"modseq: {data}")
typ, data = m.uid("FETCH", "1:*", "(FLAGS) (CHANGEDSINCE %d)" % max(modseqs))
check(data == [None] or data == [], f"changedsince none: {data}")
m.untagged_responses.pop("MODIFIED", None)
typ, data = m.uid("STORE", "1", "(UNCHANGEDSINCE 1) +FLAGS", "(\\Answered)")
modified = m.untagged_responses.pop("MODIFIED", None)
check(typ == "OK" and modified == [b"1"], f"unchangedsince refused: {typ} {data} {modified}")
typ, data = m.fetch("1", "(FLAGS)")
check(b"\\Answered" not in data[0], f"refused store changed nothing: {data}")
typ, data = m.uid("STORE", "1", "(UNCHANGEDSINCE %d) +FLAGS" % (max(modseqs) + 10), "(\\Answered)")
check(typ == "OK" and b"\\Answered" in b" ".join(d for d in data if d), f"unchangedsince ok: {data}")

# MOVE with COPYUID.
typ, _ = m.create("Archive")
check(typ == "OK", "create")
typ, data = m.uid("MOVE", "2", "Archive")
check(typ == "OK", f"move: {data}")
copyuid = m.untagged_responses.get("COPYUID") or []
check(any(re.match(rb"\d+ 2 1", c) for c in copyuid), f"COPYUID: {copyuid}")
typ, data = m.select("Archive")
check(data[0] == b"1", f"archive count: {data}")
typ, data = m.select("INBOX")
check(data[0] == b"1", f"inbox after move: {data}")

# LIST / STATUS / RENAME / DELETE.
typ, data = m.list()
check(any(b"Archive" in d for d in data) and any(b"INBOX" in d for d in data), f"list: {data}")
typ, data = m.status("Archive", "(MESSAGES UIDNEXT UNSEEN)")
check(b"MESSAGES 1" in data[0] and b"UIDNEXT 2" in data[0], f"status: {data}")
typ, _ = m.rename("Archive", "Old")
check(typ == "OK", "rename")
typ, _ = m.delete("Old")
check(typ == "OK", "delete")

typ, _ = m.logout()
print("ok")
