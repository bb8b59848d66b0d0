//! The relay rules: who may send as whom, and where each recipient goes,
//! for every way mail enters the hub. One table, written once, used by
//! SMTP (submission and MX), bundle, live-link and radio import, batch
//! SMTP and `cairn sendmail`; the README prints it and the tests below
//! check every row for every source. No I/O: the callers bring the facts
//! (hosted domains, routes, whether an account exists).
//!
//! | Source | sender `<>` | sender at a hosted domain | other sender |
//! |---|---|---|---|
//! | login (submission) | refused | only the login's own address | refused |
//! | stranger (MX port; a batch from an NNCP node that is no peer) | taken | refused | taken |
//! | local (`cairn sendmail`, `cairn bsmtp import` run on the hub) | taken | taken | taken |
//! | peer (bundle, link, radio, classic peer) | taken | refused | taken if its domain is on the peer's card or list, or routed to the peer (own route, or the default route) |
//!
//! | Source | recipient at a hosted domain | domain with a route of its own | any other domain |
//! |---|---|---|---|
//! | login | its account (no account: refused) | onward | onward (default route, or waits for one) |
//! | stranger, local | its account | onward | refused: no open relay |
//! | peer | its account | onward | onward |
//!
//! Onward from a peer: refused once the item's lifetime ran out on the way
//! or it crossed [`HOP_LIMIT`] nodes.

use crate::domain::PeerId;
use crate::domain::{Address, Domain};

/// An item that has crossed this many nodes is refused with a bounce: a
/// routing loop.
pub const HOP_LIMIT: u8 = 8;

/// Where mail came from, as far as the rules care.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A logged-in user of this hub, with their own address.
    Login(&'a Address),
    /// Someone unknown: the MX port, or a batch from an NNCP node that is
    /// no peer of this hub.
    Stranger,
    /// The hub's own command line (`cairn sendmail`, `cairn bsmtp import`
    /// without a peer): whoever runs it can read the data directory, as
    /// root may use a mail server's sendmail(1).
    Local,
    /// A known peer, vouched for by its carrier: its row id, the domains
    /// on its card (or a classic peer's list), and for an item the hops
    /// it made and whether its lifetime ran out.
    Peer {
        id: PeerId,
        domains: &'a [String],
        hops: u8,
        expired: bool,
    },
}

/// The routes table as the rules read it: (domain or `*`, peer id).
#[derive(Debug, Default, Clone)]
pub struct Routes(Vec<(String, PeerId)>);

impl Routes {
    pub fn new(rows: impl IntoIterator<Item = (String, PeerId)>) -> Self {
        Routes(rows.into_iter().collect())
    }

    /// The next hop for a domain: its own route, else the default route.
    pub fn next_hop(&self, domain: &str) -> Option<PeerId> {
        self.own(domain)
            .or_else(|| self.0.iter().find(|(d, _)| d == "*").map(|(_, p)| *p))
    }

    /// The domain's own route (not the default one).
    pub fn own(&self, domain: &str) -> Option<PeerId> {
        self.0.iter().find(|(d, _)| d == domain).map(|(_, p)| *p)
    }
}

/// Why the rules refuse a sender or a recipient; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("you are logged in as {login}; send as that address (MAIL FROM was {given})")]
    NotYourAddress { login: String, given: String },
    #[error("<{0}> is an address of this hub: log in on the submission port to send as it")]
    HostedSenderWithoutLogin(String),
    #[error(
        "this peer may not send as <{0}>: its domain is neither on the peer's card nor routed to it"
    )]
    SenderNotBehindPeer(String),
    #[error("`{0}` is not a valid address")]
    BadAddress(String),
    #[error("there is no user {0} here")]
    NoSuchUser(String),
    #[error("{0} is not a domain this hub serves or routes: relaying is not allowed")]
    RelayDenied(String),
    #[error("its lifetime ran out on the way")]
    Expired,
    #[error("it crossed {HOP_LIMIT} nodes (a routing loop?)")]
    HopLimit,
}

impl Refusal {
    /// The enhanced status code (RFC 3463) of a bounce or reply.
    pub fn status(&self) -> &'static str {
        match self {
            Refusal::NotYourAddress { .. }
            | Refusal::HostedSenderWithoutLogin(_)
            | Refusal::SenderNotBehindPeer(_)
            | Refusal::RelayDenied(_) => "5.7.1",
            Refusal::BadAddress(_) => "5.1.3",
            Refusal::NoSuchUser(_) => "5.1.1",
            Refusal::Expired => "5.4.7",
            Refusal::HopLimit => "5.4.6",
        }
    }
}

/// May `source` send as `sender` (canonical; empty for `<>`)?
pub fn sender(
    source: Source<'_>,
    sender: &str,
    hosted: &[Domain],
    routes: &Routes,
) -> Result<(), Refusal> {
    if let Source::Login(login) = source {
        return match Address::parse(sender) {
            Ok(given) if &given == login => Ok(()),
            _ => Err(Refusal::NotYourAddress {
                login: login.to_string(),
                given: sender.to_string(),
            }),
        };
    }
    if sender.is_empty() {
        return Ok(());
    }
    let address = Address::parse(sender).map_err(|_| Refusal::BadAddress(sender.to_string()))?;
    if let Source::Local = source {
        return Ok(());
    }
    // Only this hub's users send as its addresses, after login (as
    // Postfix's sender-login checks).
    if hosted.contains(address.domain()) {
        return Err(Refusal::HostedSenderWithoutLogin(address.to_string()));
    }
    match source {
        Source::Peer { id, domains, .. } => {
            let domain = address.domain().to_string();
            if domains.contains(&domain) || routes.next_hop(&domain) == Some(id) {
                Ok(())
            } else {
                Err(Refusal::SenderNotBehindPeer(address.to_string()))
            }
        }
        _ => Ok(()),
    }
}

/// Where one recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Into the INBOX of the account at this (hosted) address; whether it
    /// exists is the caller's to look up ([`Refusal::NoSuchUser`] if not).
    Local(Address),
    /// Onward: queued for the next hop (or until a route exists).
    Onward(Address),
}

/// Where `rcpt` goes when `source` sends to it.
pub fn recipient(
    source: Source<'_>,
    rcpt: &str,
    hosted: &[Domain],
    routes: &Routes,
) -> Result<Place, Refusal> {
    let address = Address::parse(rcpt).map_err(|_| Refusal::BadAddress(rcpt.to_string()))?;
    if hosted.contains(address.domain()) {
        return Ok(Place::Local(address));
    }
    match source {
        Source::Login(_) => Ok(Place::Onward(address)),
        // The MX port is no open relay: only domains routed on purpose.
        Source::Stranger | Source::Local => match routes.own(&address.domain().to_string()) {
            Some(_) => Ok(Place::Onward(address)),
            None => Err(Refusal::RelayDenied(address.domain().to_string())),
        },
        Source::Peer { expired: true, .. } => Err(Refusal::Expired),
        Source::Peer { hops, .. } if hops >= HOP_LIMIT => Err(Refusal::HopLimit),
        Source::Peer { .. } => Ok(Place::Onward(address)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB: &str = "camp.example";

    fn hosted() -> Vec<Domain> {
        vec![Domain::parse(HUB).unwrap()]
    }

    /// Peer 7 has the card domain `card.example`; `routed.example` is
    /// routed to it, `other.example` to peer 9, `*` to peer 9.
    fn routes() -> Routes {
        Routes::new([
            ("routed.example".to_string(), PeerId(7)),
            ("other.example".to_string(), PeerId(9)),
            ("*".to_string(), PeerId(9)),
        ])
    }

    fn peer(domains: &[String]) -> Source<'_> {
        Source::Peer {
            id: PeerId(7),
            domains,
            hops: 1,
            expired: false,
        }
    }

    #[test]
    fn every_sender_row_for_every_source() {
        let alice = Address::parse("alice@camp.example").unwrap();
        let card = vec!["card.example".to_string()];
        let (h, r) = (hosted(), routes());
        let check = |s: Source<'_>, sender: &str| super::sender(s, sender, &h, &r);
        // Login: only its own address.
        assert_eq!(check(Source::Login(&alice), "alice@camp.example"), Ok(()));
        assert_eq!(check(Source::Login(&alice), "ALICE@camp.example"), Ok(()));
        for other in ["", "bob@camp.example", "x@far.example"] {
            assert!(matches!(
                check(Source::Login(&alice), other),
                Err(Refusal::NotYourAddress { .. })
            ));
        }
        // Stranger: bounces and other domains, never a hosted one.
        assert_eq!(check(Source::Stranger, ""), Ok(()));
        assert_eq!(check(Source::Stranger, "x@far.example"), Ok(()));
        assert!(matches!(
            check(Source::Stranger, "alice@camp.example"),
            Err(Refusal::HostedSenderWithoutLogin(_))
        ));
        assert!(matches!(
            check(Source::Stranger, "not an address"),
            Err(Refusal::BadAddress(_))
        ));
        // Local: the hub's own command line, any sender.
        for any in ["", "alice@camp.example", "x@far.example"] {
            assert_eq!(check(Source::Local, any), Ok(()), "{any}");
        }
        assert!(check(Source::Local, "not an address").is_err());
        // Peer: bounces, its card's domains, domains routed to it.
        let p = peer(&card);
        assert_eq!(check(p, ""), Ok(()));
        assert_eq!(check(p, "x@card.example"), Ok(()));
        assert_eq!(check(p, "x@routed.example"), Ok(()));
        assert!(matches!(
            check(p, "alice@camp.example"),
            Err(Refusal::HostedSenderWithoutLogin(_))
        ));
        for elsewhere in ["x@other.example", "x@far.example"] {
            assert!(matches!(
                check(p, elsewhere),
                Err(Refusal::SenderNotBehindPeer(_))
            ));
        }
        // The peer holding the default route (a gateway) brings the
        // Internet's mail: any domain without a route of its own.
        let gateway = Source::Peer {
            id: PeerId(9),
            domains: &[],
            hops: 0,
            expired: false,
        };
        assert_eq!(check(gateway, "x@far.example"), Ok(()));
        assert!(check(gateway, "x@routed.example").is_err());
    }

    #[test]
    fn every_recipient_row_for_every_source() {
        let alice = Address::parse("alice@camp.example").unwrap();
        let card = vec!["card.example".to_string()];
        let (h, r) = (hosted(), routes());
        let place = |s: Source<'_>, rcpt: &str| super::recipient(s, rcpt, &h, &r);
        let local = |a: &str| Ok(Place::Local(Address::parse(a).unwrap()));
        let onward = |a: &str| Ok(Place::Onward(Address::parse(a).unwrap()));
        for s in [
            Source::Login(&alice),
            Source::Stranger,
            Source::Local,
            peer(&card),
        ] {
            // Hosted: the account (its existence is the caller's check).
            assert_eq!(place(s, "bob@camp.example"), local("bob@camp.example"));
            // A domain with a route of its own: onward.
            assert_eq!(place(s, "x@routed.example"), onward("x@routed.example"));
            assert!(matches!(place(s, "@@"), Err(Refusal::BadAddress(_))));
        }
        // Any other domain: onward for users and peers, refused for strangers.
        assert_eq!(
            place(Source::Login(&alice), "x@far.example"),
            onward("x@far.example")
        );
        assert_eq!(place(peer(&card), "x@far.example"), onward("x@far.example"));
        for s in [Source::Stranger, Source::Local] {
            assert_eq!(
                place(s, "x@far.example"),
                Err(Refusal::RelayDenied("far.example".into()))
            );
        }
        // A peer's item that ran out of time or hops: refused onward, but
        // still delivered here.
        for (hops, expired, why) in [
            (1, true, Refusal::Expired),
            (HOP_LIMIT, false, Refusal::HopLimit),
        ] {
            let s = Source::Peer {
                id: PeerId(7),
                domains: &card,
                hops,
                expired,
            };
            assert_eq!(place(s, "x@far.example"), Err(why));
            assert_eq!(place(s, "bob@camp.example"), local("bob@camp.example"));
        }
    }

    #[test]
    fn each_refusal_has_its_status() {
        assert_eq!(Refusal::RelayDenied("x".into()).status(), "5.7.1");
        assert_eq!(Refusal::NoSuchUser("x".into()).status(), "5.1.1");
        assert_eq!(Refusal::BadAddress("x".into()).status(), "5.1.3");
        assert_eq!(Refusal::Expired.status(), "5.4.7");
        assert_eq!(Refusal::HopLimit.status(), "5.4.6");
    }
}
