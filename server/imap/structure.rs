//! ENVELOPE and BODYSTRUCTURE (RFC 3501 §7.4.2) from a stored message,
//! parsed with mail-parser.

use imap_next::imap_types::body::{BasicFields, Body, BodyStructure, SpecificFields};
use imap_next::imap_types::core::{IString, Literal, NString, Quoted, Vec1};
use imap_next::imap_types::envelope::{Address, Envelope};
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

/// Nesting of multiparts and attached messages we describe; deeper
/// structures are shown as opaque application/octet-stream.
const MAX_DEPTH: usize = 16;

fn istr(s: &str) -> IString<'static> {
    match Quoted::try_from(s.to_string()) {
        Ok(q) => IString::Quoted(q),
        Err(_) => IString::Literal(Literal::unvalidated(s.as_bytes().to_vec())),
    }
}

fn nstr(s: Option<&str>) -> NString<'static> {
    NString(s.map(|s| istr(s.trim())))
}

fn address(addr: &mail_parser::Addr<'_>) -> Option<Address<'static>> {
    // A member that is only a comment (`group: (nobody) ;`) is no address.
    let full = addr.address()?;
    let (mailbox, host) = full.rsplit_once('@').unwrap_or((full, ""));
    // An obsolete source route (`<@route:user@domain>`, RFC 5322 §4.4) is
    // the address's at-domain-list (RFC 3501 §7.4.2), not its mailbox.
    let (adl, mailbox) = match mailbox
        .strip_prefix('@')
        .and_then(|_| mailbox.rsplit_once(':'))
    {
        Some((route, local)) => (Some(route), local),
        None => (None, mailbox),
    };
    Some(Address {
        name: nstr(addr.name()),
        adl: nstr(adl),
        mailbox: nstr(Some(mailbox)),
        host: nstr(Some(host)),
    })
}

/// An address list, groups marked as RFC 3501 §7.4.2 says: a start
/// `(NIL NIL "name" NIL)` and an end `(NIL NIL NIL NIL)` around their
/// members.
fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<Address<'static>> {
    let none = || NString(None);
    match a {
        None => Vec::new(),
        Some(mail_parser::Address::List(list)) => list.iter().filter_map(address).collect(),
        Some(mail_parser::Address::Group(groups)) => {
            let mut out = Vec::new();
            for g in groups {
                let members = g.addresses.iter().filter_map(address);
                match g.name.as_deref() {
                    Some(name) => {
                        out.push(Address {
                            name: none(),
                            adl: none(),
                            mailbox: nstr(Some(name)),
                            host: none(),
                        });
                        out.extend(members);
                        out.push(Address {
                            name: none(),
                            adl: none(),
                            mailbox: none(),
                            host: none(),
                        });
                    }
                    // Plain addresses beside the groups.
                    None => out.extend(members),
                }
            }
            out
        }
    }
}

fn angle(id: Option<&str>) -> NString<'static> {
    nstr(id.map(|i| format!("<{i}>")).as_deref())
}

/// RFC 3501 §7.4.2 ENVELOPE of a parsed message.
pub fn envelope(msg: &Message<'_>) -> Envelope<'static> {
    let from = addresses(msg.from());
    let sender = match addresses(msg.sender()) {
        v if v.is_empty() => from.clone(),
        v => v,
    };
    let reply_to = match addresses(msg.reply_to()) {
        v if v.is_empty() => from.clone(),
        v => v,
    };
    let in_reply_to = msg
        .in_reply_to()
        .as_text_list()
        .and_then(|l| l.first().map(|s| format!("<{s}>")));
    Envelope {
        date: nstr(msg.header_raw("Date")),
        subject: nstr(msg.header_raw("Subject")),
        from,
        sender,
        reply_to,
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        bcc: addresses(msg.bcc()),
        in_reply_to: nstr(in_reply_to.as_deref()),
        message_id: angle(msg.message_id()),
    }
}

/// ENVELOPE of a raw message.
pub fn envelope_of(raw: &[u8]) -> Envelope<'static> {
    match mail_parser::MessageParser::default().parse(raw) {
        Some(m) => envelope(&m),
        None => envelope(&Message::default()),
    }
}

/// BODYSTRUCTURE of a raw message.
pub fn body_structure_of(raw: &[u8]) -> BodyStructure<'static> {
    match mail_parser::MessageParser::default().parse(raw) {
        Some(m) => part_structure(&m, 0, 0),
        None => opaque(raw.len()),
    }
}

fn opaque(size: usize) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![],
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: istr("7BIT"),
                size: size as u32,
            },
            specific: SpecificFields::Basic {
                r#type: istr("APPLICATION"),
                subtype: istr("OCTET-STREAM"),
            },
        },
        extension_data: None,
    }
}

fn part_structure(msg: &Message<'_>, id: usize, depth: usize) -> BodyStructure<'static> {
    let Some(part) = msg.parts.get(id) else {
        return opaque(0);
    };
    if depth > MAX_DEPTH {
        return opaque((part.offset_end - part.offset_body) as usize);
    }
    let (ctype, subtype, params) = content_type(part);
    match &part.body {
        PartType::Multipart(children) => {
            let bodies: Vec<BodyStructure<'static>> = children
                .iter()
                .map(|c| part_structure(msg, *c as usize, depth + 1))
                .collect();
            match Vec1::try_from(bodies) {
                Ok(bodies) => BodyStructure::Multi {
                    bodies,
                    subtype: istr(&subtype.to_ascii_uppercase()),
                    extension_data: None,
                },
                Err(_) => opaque(0),
            }
        }
        body => {
            let raw =
                &msg.raw_message.as_ref()[part.offset_body as usize..part.offset_end as usize];
            // Lines of text; the CRLF before a boundary belongs to the boundary
            // (RFC 2046 §5.1.1), so a last line without one still counts.
            let lines = raw.iter().filter(|&&b| b == b'\n').count() as u32
                + u32::from(!raw.is_empty() && !raw.ends_with(b"\n"));
            let basic = BasicFields {
                parameter_list: params,
                id: nstr(part.content_id().map(|i| format!("<{i}>")).as_deref()),
                description: nstr(part.content_description()),
                content_transfer_encoding: istr(
                    &part
                        .content_transfer_encoding()
                        .unwrap_or("7BIT")
                        .to_ascii_uppercase(),
                ),
                size: raw.len() as u32,
            };
            let specific = match body {
                PartType::Message(inner) => SpecificFields::Message {
                    envelope: Box::new(envelope(inner)),
                    body_structure: Box::new(part_structure(inner, 0, depth + 1)),
                    number_of_lines: lines,
                },
                _ if ctype.eq_ignore_ascii_case("text") => SpecificFields::Text {
                    subtype: istr(&subtype.to_ascii_uppercase()),
                    number_of_lines: lines,
                },
                _ => SpecificFields::Basic {
                    r#type: istr(&ctype.to_ascii_uppercase()),
                    subtype: istr(&subtype.to_ascii_uppercase()),
                },
            };
            BodyStructure::Single {
                body: Body { basic, specific },
                extension_data: None,
            }
        }
    }
}

type Params = Vec<(IString<'static>, IString<'static>)>;

fn content_type(part: &MessagePart<'_>) -> (String, String, Params) {
    match part.content_type() {
        Some(ct) => {
            let params = ct
                .attributes()
                .unwrap_or(&[])
                .iter()
                .map(|a| (istr(&a.name.to_ascii_uppercase()), istr(&a.value)))
                .collect();
            (
                ct.ctype().to_string(),
                ct.subtype().unwrap_or("plain").to_string(),
                params,
            )
        }
        None => (
            "text".into(),
            "plain".into(),
            vec![(istr("CHARSET"), istr("us-ascii"))],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::encode::Encoder;

    fn encode_bs(bs: &BodyStructure<'static>) -> String {
        use imap_next::imap_types::fetch::MessageDataItem;
        use imap_next::imap_types::response::Data;
        let data = Data::Fetch {
            seq: std::num::NonZeroU32::MIN,
            items: Vec1::from(MessageDataItem::BodyStructure(bs.clone())),
        };
        let bytes = imap_codec::ResponseCodec::default()
            .encode(&imap_next::imap_types::response::Response::Data(data))
            .dump();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn multipart_structure_and_envelope() {
        let raw = b"From: Alice <alice@camp.example>\r\nTo: bob@camp.example, carol@camp.example\r\nSubject: trip\r\nDate: Wed, 25 Nov 2026 18:00:00 +0000\r\nMessage-ID: <m1@camp.example>\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nthere\r\n--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n";
        let bs = encode_bs(&body_structure_of(raw));
        assert!(
            bs.contains("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 12 2)"),
            "{bs}"
        );
        assert!(
            bs.contains("(\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 12)"),
            "{bs}"
        );
        assert!(bs.contains(" \"MIXED\")"), "{bs}");
        let env = envelope_of(raw);
        assert_eq!(env.to.len(), 2);
        assert_eq!(env.from[0].host, nstr(Some("camp.example")));
        assert_eq!(env.message_id, nstr(Some("<m1@camp.example>")));
        assert_eq!(env.subject, nstr(Some("trip")));
        assert_eq!(env.sender, env.from, "sender defaults to from");
    }

    /// RFC 3501 §7.4.2: a group is its name as a start marker, its
    /// members, and an end marker; a member that is only a comment is
    /// no address (issue 23 point 5).
    #[test]
    fn groups_keep_their_markers() {
        let raw = b"From: a@x.example\r\nTo: team: b@x.example, Carol <c@y.example>;, d@z.example\r\nCc: group2: (foo) ;\r\n\r\nhi\r\n";
        let env = envelope_of(raw);
        let show = |list: &[Address<'static>]| -> Vec<String> {
            list.iter()
                .map(|a| {
                    let s = |n: &NString<'static>| match &n.0 {
                        Some(v) => String::from_utf8_lossy(v.as_ref()).into_owned(),
                        None => "NIL".into(),
                    };
                    format!("{} {} {}", s(&a.name), s(&a.mailbox), s(&a.host))
                })
                .collect()
        };
        assert_eq!(
            show(&env.to),
            [
                "NIL team NIL",
                "NIL b x.example",
                "Carol c y.example",
                "NIL NIL NIL",
                "NIL d z.example"
            ]
        );
        assert_eq!(show(&env.cc), ["NIL group2 NIL", "NIL NIL NIL"]);
    }

    /// An obsolete source route is the at-domain-list (imaptest's
    /// fetch-envelope: `<@route:user@domain>`).
    #[test]
    fn a_source_route_is_the_adl() {
        let env = envelope_of(b"From: <@route:user@domain>\r\nTo: plain@x.example\r\n\r\nhi\r\n");
        let a = &env.from[0];
        assert_eq!(a.adl, nstr(Some("@route")));
        assert_eq!(a.mailbox, nstr(Some("user")));
        assert_eq!(a.host, nstr(Some("domain")));
        assert_eq!(env.to[0].adl, NString(None));
    }
}
