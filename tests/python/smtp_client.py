#!/usr/bin/env python3
"""Submit one message to cairn with Python's smtplib, as other mail apps do.

Usage: smtp_client.py MODE HOST PORT USER PASSWORD FROM TO[,TO...] KIND
MODE: tls (implicit TLS) or starttls. KIND: encrypted (a real OpenPGP
message made by gpg, in the PGP/MIME shape Delta Chat sends) or plain.
Prints the final reply code, or `refused CODE TEXT`, and exits 0 when the
server accepted the message.
"""
import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import uuid


def encrypted_body(text):
    with tempfile.TemporaryDirectory() as home:
        armour = subprocess.run(
            ["gpg", "--homedir", home, "--batch", "--yes", "--quiet", "--symmetric",
             "--armor", "--pinentry-mode", "loopback", "--passphrase", "cairn-test"],
            input=text.encode(), capture_output=True, check=True,
        ).stdout.decode().replace("\r\n", "\n").replace("\n", "\r\n")
    return (
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
        ' boundary="cairn-b"\r\n'
        "\r\n"
        "This is an OpenPGP/MIME encrypted message.\r\n"
        "--cairn-b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
        '--cairn-b\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
        + armour + "\r\n--cairn-b--\r\n"
    )


def message(sender, kind):
    head = (
        f"From: <{sender}>\r\n"
        'To: "hidden-recipients": ;\r\n'
        "Subject: [...]\r\n"
        f"Message-ID: <{uuid.uuid4()}@localhost>\r\n"
        "MIME-Version: 1.0\r\n"
        "User-Agent: smtplib-test/1.0\r\n"
        "Received: from phone (10.42.0.7)\r\n"
    )
    if kind == "encrypted":
        return head + encrypted_body("hello from the campsite\n")
    return head + "Content-Type: text/plain\r\n\r\nhello in clear text\r\n"


def main():
    mode, host, port, user, password, sender, to, kind = sys.argv[1:9]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if mode == "tls":
        smtp = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=30)
    else:
        smtp = smtplib.SMTP(host, int(port), timeout=30)
        smtp.starttls(context=ctx)
    smtp.login(user, password)
    try:
        refused = smtp.sendmail(sender, to.split(","), message(sender, kind).encode())
    except smtplib.SMTPResponseException as e:
        print(f"refused {e.smtp_code} {e.smtp_error.decode(errors='replace')}")
        return 1
    except smtplib.SMTPRecipientsRefused as e:
        print(f"refused recipients {e.recipients}")
        return 1
    if refused:
        print(f"partly refused {refused}")
        return 1
    smtp.quit()
    print("250")
    return 0


if __name__ == "__main__":
    sys.exit(main())
