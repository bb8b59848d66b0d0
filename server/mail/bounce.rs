//! Bounces: an RFC 3464 delivery status notification inside an RFC 6522
//! `multipart/report`, from MAILER-DAEMON, which Delta Chat shows as a
//! failed send on the original message (it matches the Message-ID in the
//! returned headers).

use crate::domain::Domain;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Returned header section is cut at this size: enough for Message-ID and
/// the rest of the envelope headers, never the body (which may be large
/// and is the sender's own anyway).
pub const MAX_RETURNED_HEADERS: usize = 16 << 10;

/// One recipient that could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub recipient: String,
    /// RFC 3463 enhanced status code, e.g. "5.4.7" (delivery time expired).
    pub status: String,
    /// Why, in words a person can act on.
    pub diagnostic: String,
}

/// What a bounce is built from.
pub struct BounceInput<'a> {
    /// The hub's mail domain (the bounce comes from MAILER-DAEMON@ it).
    pub domain: &'a Domain,
    /// The hub's name for the Reporting-MTA field.
    pub reporting_mta: &'a str,
    /// The original envelope sender, who gets the bounce.
    pub sender: &'a str,
    pub failures: &'a [Failure],
    /// The original message's header section.
    pub original_header: &'a [u8],
    /// When the original message arrived here (Unix seconds).
    pub arrived: i64,
    pub now: OffsetDateTime,
}

fn date(t: OffsetDateTime) -> String {
    t.format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The bounce message (CRLF line endings). Its envelope is `MAIL FROM:<>`
/// to the original sender, so a bounce can never bounce again.
pub fn build(input: &BounceInput<'_>) -> Vec<u8> {
    let mut rnd = [0u8; 12];
    getrandom::fill(&mut rnd).expect("system random source");
    let token = crate::domain::hex(&rnd);
    let boundary = format!("cairn-report-{token}");
    let arrived = OffsetDateTime::from_unix_timestamp(input.arrived).unwrap_or(input.now);
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        input.domain
    ));
    m.push_str(&format!("To: <{}>\r\n", clean(input.sender)));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {}\r\n", date(input.now)));
    m.push_str(&format!(
        "Message-ID: <bounce-{token}@{}>\r\n",
        input.domain
    ));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a MIME-encapsulated delivery status notification.\r\n\r\n");

    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    m.push_str(&format!(
        "This is the cairn hub {}. Your message could not be delivered\r\nto these recipients:\r\n\r\n",
        clean(input.reporting_mta)
    ));
    for f in input.failures {
        m.push_str(&format!(
            "  <{}>: {}\r\n",
            clean(&f.recipient),
            clean(&f.diagnostic)
        ));
    }
    m.push_str("\r\n");

    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: message/delivery-status\r\n\r\n");
    // RFC 3464 §2.2 per-message fields.
    m.push_str(&format!(
        "Reporting-MTA: dns; {}\r\n",
        clean(input.reporting_mta)
    ));
    m.push_str(&format!("Arrival-Date: {}\r\n", date(arrived)));
    // RFC 3464 §2.3 per-recipient fields.
    for f in input.failures {
        m.push_str("\r\n");
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            clean(&f.recipient)
        ));
        m.push_str("Action: failed\r\n");
        m.push_str(&format!("Status: {}\r\n", clean(&f.status)));
        m.push_str(&format!(
            "Diagnostic-Code: X-Cairn; {}\r\n",
            clean(&f.diagnostic)
        ));
    }
    m.push_str("\r\n");

    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/rfc822-headers\r\n\r\n");
    let mut headers = input.original_header;
    if headers.len() > MAX_RETURNED_HEADERS {
        // Cut at a line end so no header is half there.
        let cut = headers[..MAX_RETURNED_HEADERS]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        headers = &headers[..cut];
    }
    let mut out = m.into_bytes();
    // Drop the blank line that ended the header section.
    if headers.ends_with(b"\r\n\r\n") {
        headers = &headers[..headers.len() - 2];
    }
    out.extend_from_slice(headers);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounce_that_mail_readers_understand() {
        use mail_parser::MimeHeaders;
        let domain = Domain::parse("[10.42.0.1]").unwrap();
        let header =
            b"From: <alice@[10.42.0.1]>\r\nMessage-ID: <abc@localhost>\r\nSubject: [...]\r\n\r\n";
        let failures = vec![Failure {
            recipient: "dave@elsewhere.example".into(),
            status: "5.4.7".into(),
            diagnostic: "no route reached it within 14 days".into(),
        }];
        let msg = build(&BounceInput {
            domain: &domain,
            reporting_mta: "riverside",
            sender: "alice@[10.42.0.1]",
            failures: &failures,
            original_header: header,
            arrived: 1_700_000_000,
            now: OffsetDateTime::from_unix_timestamp(1_700_100_000).unwrap(),
        });
        let parsed = mail_parser::MessageParser::default().parse(&msg).unwrap();
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address(),
            Some("MAILER-DAEMON@[10.42.0.1]")
        );
        let ct = parsed.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert!(parsed.header("Auto-Submitted").is_some());
        assert_eq!(parsed.parts.len(), 4, "container + three parts");
        let status = String::from_utf8_lossy(parsed.parts[2].contents());
        assert!(
            status.contains("Final-Recipient: rfc822; dave@elsewhere.example"),
            "{status}"
        );
        assert!(
            status.contains("Status: 5.4.7") && status.contains("Action: failed"),
            "{status}"
        );
        assert!(
            status.contains("Arrival-Date: Tue, 14 Nov 2023"),
            "{status}"
        );
        let returned = String::from_utf8_lossy(parsed.parts[3].contents());
        assert!(
            returned.contains("Message-ID: <abc@localhost>"),
            "{returned}"
        );
        // And it passes our own encryption rule as an incoming bounce.
        let end = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let rcpts = vec!["alice@[10.42.0.1]".to_string()];
        let env = crate::mail::policy::Envelope {
            mail_from: "",
            rcpts: &rcpts,
        };
        crate::mail::policy::check(
            crate::mail::policy::Direction::Incoming,
            &env,
            &msg[..end],
            &mut &msg[..],
        )
        .unwrap();
    }

    #[test]
    fn header_injection_and_size_are_bounded() {
        let domain = Domain::parse("camp.example").unwrap();
        let big = format!("X-Big: {}\r\n", "y".repeat(100)).repeat(1000) + "\r\n";
        let failures = vec![Failure {
            recipient: "a@b\r\nBcc: victim@x".into(),
            status: "5.1.1".into(),
            diagnostic: "x".into(),
        }];
        let msg = build(&BounceInput {
            domain: &domain,
            reporting_mta: "hub",
            sender: "s@camp.example\r\nBcc: v@x",
            failures: &failures,
            original_header: big.as_bytes(),
            arrived: 0,
            now: OffsetDateTime::UNIX_EPOCH,
        });
        let text = String::from_utf8_lossy(&msg);
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(msg.len() < MAX_RETURNED_HEADERS + 4096);
    }
}
