//! This node's identity (a static X25519 key for Noise) and node cards,
//! the one-line text (and QR code) by which nodes introduce themselves:
//!
//! ```text
//! cairn-node:v1;name=camp-a;key=<base64url 32 bytes>;domains=camp-a.example,[10.42.0.1];addrs=192.0.2.7:7700
//! ```

use super::bundle::{NodeKey, generate_keypair};
use crate::domain::Domain;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::path::Path;

const CARD_PREFIX: &str = "cairn-node:v1;";
const KEY_FILE_TAG: &str = "cairn node key v1";
/// Longest node name.
pub const MAX_NAME: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "cannot read the node key {path}: {source}: restore it from a backup, or move it away to make a new identity (peers must then add the new card)"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the node key {path} is damaged: restore it from a backup, or move it away to make a new identity (peers must then add the new card)"
    )]
    Damaged { path: String },
    #[error("cannot write the node key {path}: {source}")]
    Write {
        path: String,
        source: crate::tls::Error,
    },
    #[error(
        "not a node card: {0}; a card looks like `cairn-node:v1;name=…;key=…;domains=…` (print one with `cairn node card`)"
    )]
    BadCard(String),
    #[error("`{0}` is not a usable node name: use 1–40 letters, digits, '-', '_' or '.'")]
    BadName(String),
}

/// This node's key pair.
#[derive(Clone)]
pub struct Identity {
    pub private: [u8; 32],
    pub public: NodeKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", fingerprint(&self.public))
    }
}

/// Whether [`ensure`] made a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    New,
    Reused,
}

/// Load the node key at `path`, making it on first use.
pub fn ensure(path: &Path) -> Result<(Identity, Made), NodeError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut lines = text.lines();
            let private = match (lines.next(), lines.next()) {
                (Some(KEY_FILE_TAG), Some(b64)) => URL_SAFE_NO_PAD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v).ok()),
                _ => None,
            }
            .ok_or(NodeError::Damaged {
                path: shown.clone(),
            })?;
            let public = public_of(&private);
            Ok((Identity { private, public }, Made::Reused))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (private, public) = generate_keypair();
            let text = format!(
                "{KEY_FILE_TAG}\n{}\n\nThis node's private key: it is who the node is to its peers. Keep it secret, keep a backup.\n",
                URL_SAFE_NO_PAD.encode(private)
            );
            crate::tls::write_atomic(path, text.as_bytes(), true).map_err(|source| {
                NodeError::Write {
                    path: shown,
                    source,
                }
            })?;
            Ok((Identity { private, public }, Made::New))
        }
        Err(source) => Err(NodeError::Read {
            path: shown,
            source,
        }),
    }
}

/// The X25519 public key of a private key, by snow's own curve code.
pub fn public_of(private: &[u8; 32]) -> NodeKey {
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    let mut dh = DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .expect("curve25519 available");
    dh.set(private);
    let mut public = [0u8; 32];
    public.copy_from_slice(dh.pubkey());
    public
}

/// A short, stable, printable name of a key: the first 16 base64url
/// characters (96 bits), enough to tell nodes apart by eye and in logs.
pub fn fingerprint(key: &NodeKey) -> String {
    URL_SAFE_NO_PAD.encode(key)[..16].to_string()
}

/// How a peer is shown in lists: its node fingerprint, or what kind of
/// classic peer it is.
pub fn describe(p: &crate::store::relay::PeerRow) -> String {
    match (p.key(), &p.nncp_node) {
        (Some(key), _) => format!("node {}", fingerprint(&key)),
        (None, Some(n)) => format!("classic (batch SMTP, NNCP node {n})"),
        (None, None) => "classic (batch SMTP)".into(),
    }
}

pub fn key_text(key: &NodeKey) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// A node as it introduces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub name: String,
    pub key: NodeKey,
    pub domains: Vec<Domain>,
    /// Where it may be reached (host:port), for live links; may be empty.
    pub addrs: Vec<String>,
}

/// Where peers may dial this node's live links, for its card: each link
/// listener's address, and for one on all interfaces each of the hub's
/// names with that port (IPv6 in brackets).
pub fn link_addrs(listen: &[std::net::SocketAddr], hostnames: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |a: String| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for l in listen {
        if l.port() == 0 {
            continue;
        }
        if l.ip().is_unspecified() {
            for h in hostnames {
                if h.contains(':') {
                    push(format!("[{h}]:{}", l.port()));
                } else {
                    push(format!("{h}:{}", l.port()));
                }
            }
        } else {
            push(l.to_string());
        }
    }
    out
}

pub fn check_name(name: &str) -> Result<(), NodeError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NodeError::BadName(name.to_string()))
    }
}

impl Card {
    pub fn to_text(&self) -> String {
        let domains: Vec<String> = self.domains.iter().map(|d| d.to_string()).collect();
        format!(
            "{CARD_PREFIX}name={};key={};domains={};addrs={}",
            self.name,
            key_text(&self.key),
            domains.join(","),
            self.addrs.join(",")
        )
    }

    pub fn parse(text: &str) -> Result<Card, NodeError> {
        let bad = |why: &str| NodeError::BadCard(why.to_string());
        let text = text.trim();
        let body = text
            .strip_prefix(CARD_PREFIX)
            .ok_or_else(|| bad("it does not start with `cairn-node:v1;`"))?;
        let (mut name, mut key, mut domains, mut addrs) = (None, None, Vec::new(), Vec::new());
        for field in body.split(';').filter(|f| !f.is_empty()) {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| bad(&format!("field `{field}` has no `=`")))?;
            match k {
                "name" => {
                    check_name(v)?;
                    name = Some(v.to_string());
                }
                "key" => {
                    let raw = URL_SAFE_NO_PAD
                        .decode(v)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or_else(|| bad("the key is not 32 bytes of base64url"))?;
                    key = Some(raw);
                }
                "domains" => {
                    for d in v.split(',').filter(|d| !d.is_empty()) {
                        let d = Domain::parse(d).map_err(|e| bad(&format!("domain `{d}`: {e}")))?;
                        if !domains.contains(&d) {
                            domains.push(d);
                        }
                    }
                }
                "addrs" => {
                    addrs = v
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                // Later versions may add fields; ignore what we do not know.
                _ => {}
            }
        }
        Ok(Card {
            name: name.ok_or_else(|| bad("it has no name"))?,
            key: key.ok_or_else(|| bad("it has no key"))?,
            domains,
            addrs,
        })
    }
}

/// A card (or any text) as a QR code drawn with Unicode half blocks, dark
/// on light, for a terminal.
pub fn qr_text(text: &str) -> Result<String, NodeError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| NodeError::BadCard(format!("too long for a QR code: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Dark)
        .light_color(Dense1x2::Light)
        .quiet_zone(true)
        .build())
}

/// A card (or any text) as an SVG QR code, for web pages and printouts.
pub fn qr_svg(text: &str) -> Result<String, NodeError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| NodeError::BadCard(format!("too long for a QR code: {e}")))?;
    Ok(code.render::<svg::Color>().min_dimensions(200, 200).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_addrs_name_the_hub_on_wildcard_listeners() {
        let names = vec!["10.42.0.1".to_string(), "hub.camp".into(), "fd00::1".into()];
        assert_eq!(
            link_addrs(&["[::]:7465".parse().unwrap()], &names),
            ["10.42.0.1:7465", "hub.camp:7465", "[fd00::1]:7465"]
        );
        assert_eq!(
            link_addrs(
                &[
                    "127.0.0.1:7465".parse().unwrap(),
                    "127.0.0.1:0".parse().unwrap()
                ],
                &names
            ),
            ["127.0.0.1:7465"]
        );
    }

    #[test]
    fn key_file_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let (a, made) = ensure(&path).unwrap();
        assert_eq!(made, Made::New);
        let (b, made) = ensure(&path).unwrap();
        assert_eq!(made, Made::Reused);
        assert_eq!(a.public, b.public);
        assert_eq!(a.private, b.private);
        std::fs::write(&path, "cairn node key v1\nshort\n").unwrap();
        let e = ensure(&path).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn derived_public_key_matches_the_generated_one() {
        let (private, public) = generate_keypair();
        assert_eq!(public_of(&private), public);
    }

    #[test]
    fn card_round_trip() {
        let card = Card {
            name: "camp-a".into(),
            key: [7; 32],
            domains: vec![
                Domain::parse("camp-a.example").unwrap(),
                Domain::parse("[10.42.0.1]").unwrap(),
            ],
            addrs: vec!["192.0.2.7:7700".into()],
        };
        let text = card.to_text();
        assert!(text.starts_with("cairn-node:v1;name=camp-a;key="), "{text}");
        assert_eq!(Card::parse(&text).unwrap(), card);
        assert_eq!(Card::parse(&format!("  {text};future=1\n")).unwrap(), card);
    }

    #[test]
    fn cards_fit_a_qr_code() {
        let card = Card {
            name: "camp-a".into(),
            key: [7; 32],
            domains: vec![Domain::parse("camp-a.example").unwrap()],
            addrs: vec!["192.0.2.7:7700".into()],
        };
        let text = qr_text(&card.to_text()).unwrap();
        assert!(text.lines().count() > 10, "{text}");
        assert!(qr_svg(&card.to_text()).unwrap().starts_with("<?xml"));
    }

    #[test]
    fn bad_cards_say_why() {
        for (text, why) in [
            ("hello", "cairn-node:v1"),
            ("cairn-node:v1;name=a", "no key"),
            ("cairn-node:v1;name=a;key=AAAA", "32 bytes"),
            ("cairn-node:v1;name=a b;key=x", "node name"),
            (
                "cairn-node:v1;name=a;key=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc;domains=bad domain",
                "domain",
            ),
        ] {
            let e = Card::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
