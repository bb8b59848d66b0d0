use super::*;
use base64::Engine;

fn armour(packets: &[u8], version_header: bool) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(packets);
    let mut s = String::from("-----BEGIN PGP MESSAGE-----\r\n");
    if version_header {
        s.push_str("Version: Foo 1.0\r\n");
    }
    s.push_str("Comment: x\r\n\r\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push_str("\r\n");
    }
    s.push_str("=abcd\r\n-----END PGP MESSAGE-----\r\n");
    s
}

fn encrypted_message(packets: &[u8], version_header: bool) -> Vec<u8> {
    format!(
        "From: <a@[127.0.0.1]>\r\nTo: \"hidden-recipients\": ;\r\nSubject: [...]\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\
         \tboundary=\"XYZ\"\r\n\r\n\
         This is an OpenPGP/MIME encrypted message.\r\n\
         --XYZ\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n\
         --XYZ\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n{}\r\n--XYZ--\r\n",
        armour(packets, version_header)
    )
    .into_bytes()
}

/// PKESK (new format, tag 1) then SEIPD (tag 18) with a plain length.
fn good_packets() -> Vec<u8> {
    let mut p = vec![0xC1, 12];
    p.extend_from_slice(&[3; 12]);
    p.extend_from_slice(&[0xC3, 4, 5, 5, 5, 5]); // an SKESK too
    p.extend_from_slice(&[0xD2, 200 - 192 + 192, 8]); // two-octet length: (200-192)*256+8+192
    p.extend(std::iter::repeat_n(7u8, (200 - 192) * 256 + 8 + 192));
    p
}

fn run(
    direction: Direction,
    mail_from: &str,
    rcpts: &[&str],
    msg: &[u8],
) -> Result<(), NotEncrypted> {
    let header_end = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let rcpts: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
    let env = Envelope {
        mail_from,
        rcpts: &rcpts,
    };
    // A tiny buffer, so every boundary case of the streaming reader is hit.
    let mut reader = std::io::BufReader::with_capacity(7, msg);
    check(direction, &env, &msg[..header_end], &mut reader)
}

fn out(msg: &[u8]) -> Result<(), NotEncrypted> {
    run(
        Direction::Outgoing,
        "a@[127.0.0.1]",
        &["b@[127.0.0.1]"],
        msg,
    )
}

#[test]
fn encrypted_messages_pass() {
    assert_eq!(out(&encrypted_message(&good_packets(), false)), Ok(()));
}

#[test]
fn partial_body_lengths_and_old_format_packets_pass() {
    // Old-format PKESK: tag 1, one length octet.
    let mut p = vec![0x84, 3, 1, 2, 3];
    // SEIPD with partial chunks of 512 and 1 bytes, then a last chunk of 10.
    p.extend_from_slice(&[0xD2, 0xE9]);
    p.extend_from_slice(&[9; 512]);
    p.push(0xE0);
    p.push(1);
    p.push(10);
    p.extend_from_slice(&[9; 10]);
    assert_eq!(out(&encrypted_message(&p, false)), Ok(()));
}

#[test]
fn plain_text_is_refused() {
    let msg = b"From: <a@[127.0.0.1]>\r\nSubject: hi\r\n\r\nhello\r\n";
    assert!(out(msg).is_err());
    assert!(run(Direction::Incoming, "a@x", &["b@[127.0.0.1]"], msg).is_err());
}

#[test]
fn broken_or_foreign_packets_are_refused() {
    let literal = vec![0xCB, 3, 1, 2, 3]; // tag 11 literal data: clear text in disguise
    assert!(out(&encrypted_message(&literal, false)).is_err());
    let no_key = vec![0xD2, 2, 1, 1];
    assert!(out(&encrypted_message(&no_key, false)).is_err());
    let mut two_data = good_packets();
    two_data.extend_from_slice(&[0xD2, 1, 1]);
    assert!(out(&encrypted_message(&two_data, false)).is_err());
    let mut truncated = good_packets();
    truncated.truncate(truncated.len() - 5);
    assert!(out(&encrypted_message(&truncated, false)).is_err());
    let mut trailing = good_packets();
    trailing.push(0x00);
    assert!(out(&encrypted_message(&trailing, false)).is_err());
}

#[test]
fn armour_version_header_only_refused_outgoing() {
    let msg = encrypted_message(&good_packets(), true);
    assert!(out(&msg).is_err());
    assert_eq!(
        run(Direction::Incoming, "a@x", &["b@[127.0.0.1]"], &msg),
        Ok(())
    );
}

#[test]
fn wrong_mime_structure_is_refused() {
    let good = String::from_utf8(encrypted_message(&good_packets(), false)).unwrap();
    let v2 = good.replace("Version: 1", "Version: 2");
    assert!(out(v2.as_bytes()).is_err());
    let extra = good.replace(
        "--XYZ--",
        "--XYZ\r\nContent-Type: text/plain\r\n\r\nleak\r\n--XYZ--",
    );
    assert!(out(extra.as_bytes()).is_err());
    let no_close = good.replace("--XYZ--\r\n", "");
    assert!(out(no_close.as_bytes()).is_err());
}

#[test]
fn securejoin_requests_pass_in_clear() {
    let msg = b"From: <a@[127.0.0.1]>\r\nSecure-Join: vc-request\r\nContent-Type: text/plain\r\n\r\nsecure-join: vc-request\r\n";
    assert_eq!(out(msg), Ok(()));
    let other = b"From: <a@[127.0.0.1]>\r\nSecure-Join: vc-request\r\nContent-Type: text/plain\r\n\r\nsecret text\r\n";
    assert!(out(other).is_err());
}

#[test]
fn autocrypt_setup_message_only_to_oneself() {
    let msg = b"From: <a@[127.0.0.1]>\r\nAutocrypt-Setup-Message: v1\r\n\r\nkey\r\n";
    assert_eq!(
        run(
            Direction::Outgoing,
            "a@[127.0.0.1]",
            &["a@[127.0.0.1]"],
            msg
        ),
        Ok(())
    );
    assert!(
        run(
            Direction::Outgoing,
            "a@[127.0.0.1]",
            &["b@[127.0.0.1]"],
            msg
        )
        .is_err()
    );
}

#[test]
fn bounces_pass_only_incoming() {
    let msg = b"From: Mail Delivery System <MAILER-DAEMON@peer.example>\r\nAuto-Submitted: auto-replied\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
    assert_eq!(
        run(Direction::Incoming, "", &["a@[127.0.0.1]"], msg),
        Ok(())
    );
    assert!(run(Direction::Outgoing, "", &["a@[127.0.0.1]"], msg).is_err());
}
