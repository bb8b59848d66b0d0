//! DKIM signatures (RFC 6376) on the mail a gateway hands to the Internet.
//!
//! Chatmail relays refuse mail without a valid signature of the From
//! domain, and large providers junk it; so every message leaving through
//! the gateway is signed as the domain in its From header when that is a
//! domain the gateway carries (its own, or a camp's routed through it),
//! else as the gateway's own domain. Each domain has two keys, made on
//! first use and kept in the data directory: RSA 2048 (what every
//! verifier knows) and Ed25519 (RFC 8463, short and fast), each published
//! under its own selector. Canonicalisation is relaxed/relaxed; the
//! headers a reader trusts are oversigned, so that a copy with a second
//! From, Subject or Autocrypt header fails instead of passing.
//!
//! The signing and canonicalisation are the `mail-auth` crate's; this
//! module keeps the keys and says what to publish.

use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rcgen::{KeyPair, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData, RsaKeySize};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};

/// The selector of each domain's RSA key (`cairn-rsa._domainkey.DOMAIN`).
pub const SELECTOR_RSA: &str = "cairn-rsa";
/// The selector of each domain's Ed25519 key.
pub const SELECTOR_ED25519: &str = "cairn-ed25519";

/// Signed once per occurrence: what a reader sees and what Delta Chat
/// reads (Autocrypt, Chat-*), plus the MIME structure.
const SIGNED: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "autocrypt",
    "chat-version",
    "chat-disposition-notification-to",
    "list-id",
    "list-unsubscribe",
    "list-post",
];

/// Listed once more than they occur (RFC 6376 §8.15): a header of these
/// names added after signing breaks the signature. The list chatmail
/// relays oversign.
const OVERSIGNED: &[&str] = &[
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "in-reply-to",
    "references",
    "autocrypt",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-post",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the DKIM key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the DKIM key {path} cannot be used ({why}): restore it from a backup, or start over with `cairn gateway dns --new-keys {domain}` and publish the new records"
    )]
    Damaged {
        path: PathBuf,
        domain: String,
        why: String,
    },
    #[error("cannot store a new DKIM key at {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a DKIM key: {0}")]
    Generate(String),
    #[error("cannot sign the message: {0}")]
    Sign(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One DNS TXT record to publish for a domain's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub selector: &'static str,
    /// `SELECTOR._domainkey.DOMAIN`
    pub name: String,
    /// `v=DKIM1; k=…; p=…`
    pub value: String,
}

/// The folder of DKIM keys, one pair per domain.
#[derive(Debug, Clone)]
pub struct Keys {
    dir: PathBuf,
}

/// A domain's two keys, ready to sign.
pub struct DomainKeys {
    domain: String,
    rsa: DkimSigner<RsaKey<Sha256>, Done>,
    ed25519: DkimSigner<Ed25519Key, Done>,
    records: Vec<KeyRecord>,
}

#[derive(Clone, Copy)]
enum Kind {
    Rsa,
    Ed25519,
}

impl Kind {
    fn file(self, domain: &str) -> String {
        match self {
            Kind::Rsa => format!("{domain}.rsa2048.pem"),
            Kind::Ed25519 => format!("{domain}.ed25519.pem"),
        }
    }
}

impl Keys {
    pub fn new(dir: impl Into<PathBuf>) -> Keys {
        Keys { dir: dir.into() }
    }

    /// The keys of `domain` (a validated domain name, lower case ASCII),
    /// made and stored the first time they are asked for.
    pub fn domain(&self, domain: &str) -> Result<DomainKeys> {
        let domain = domain.to_ascii_lowercase();
        if domain.is_empty() || domain.contains(['/', '\0']) || domain.starts_with('.') {
            return Err(Error::Generate(format!("`{domain}` is not a domain name")));
        }
        let rsa_pair = self.pair(&domain, Kind::Rsa)?;
        let ed_pair = self.pair(&domain, Kind::Ed25519)?;
        let damaged = |kind: Kind, why: String| Error::Damaged {
            path: self.dir.join(kind.file(&domain)),
            domain: domain.clone(),
            why,
        };
        let rsa = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            rsa_pair.serialize_der(),
        )))
        .map_err(|e| damaged(Kind::Rsa, e.to_string()))?;
        let ed25519 = Ed25519Key::from_pkcs8_maybe_unchecked_der(&ed_pair.serialize_der())
            .map_err(|e| damaged(Kind::Ed25519, e.to_string()))?;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let records = vec![
            KeyRecord {
                selector: SELECTOR_RSA,
                name: format!("{SELECTOR_RSA}._domainkey.{domain}"),
                value: format!(
                    "v=DKIM1; k=rsa; p={}",
                    b64(&rsa_pair.subject_public_key_info())
                ),
            },
            KeyRecord {
                selector: SELECTOR_ED25519,
                name: format!("{SELECTOR_ED25519}._domainkey.{domain}"),
                value: format!("v=DKIM1; k=ed25519; p={}", b64(ed_pair.public_key_raw())),
            },
        ];
        let headers: Vec<&str> = SIGNED.iter().chain(OVERSIGNED).copied().collect();
        Ok(DomainKeys {
            rsa: DkimSigner::from_key(rsa)
                .domain(domain.as_str())
                .selector(SELECTOR_RSA)
                .headers(headers.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed),
            ed25519: DkimSigner::from_key(ed25519)
                .domain(domain.as_str())
                .selector(SELECTOR_ED25519)
                .headers(headers)
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed),
            domain,
            records,
        })
    }

    /// Whether both key files of `domain` are there.
    pub fn exists(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        [Kind::Rsa, Kind::Ed25519]
            .iter()
            .all(|k| self.dir.join(k.file(&domain)).exists())
    }

    /// Put `domain`'s key files aside (renamed `….old-WHEN`), so the next
    /// use makes new ones.
    pub fn retire(&self, domain: &str, when: i64) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        for k in [Kind::Rsa, Kind::Ed25519] {
            let path = self.dir.join(k.file(&domain));
            let aside = self.dir.join(format!("{}.old-{when}", k.file(&domain)));
            match std::fs::rename(&path, &aside) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Write { path, source: e });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Read one key, or make it when there is none; a key another process
    /// made meanwhile wins (it may be published already).
    fn pair(&self, domain: &str, kind: Kind) -> Result<KeyPair> {
        let path = self.dir.join(kind.file(domain));
        match std::fs::read_to_string(&path) {
            Ok(pem) => return parse(&path, domain, &pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Read { path, source }),
        }
        let made = match kind {
            Kind::Rsa => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            Kind::Ed25519 => KeyPair::generate_for(&PKCS_ED25519),
        }
        .map_err(|e| Error::Generate(e.to_string()))?;
        let write = |source| Error::Write {
            path: path.clone(),
            source,
        };
        match crate::datadir::private_dir(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(write(e)),
            Err(_) => {}
            Ok(()) => self.give_to_hub(&self.dir),
        }
        match crate::datadir::create_file(&path, made.serialize_pem().as_bytes(), true) {
            Ok(()) => {
                self.give_to_hub(&path);
                tracing::info!(domain, path = %path.display(), "made a DKIM key; publish its record (cairn gateway dns)");
                Ok(made)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pem = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                parse(&path, domain, &pem)
            }
            Err(e) => Err(write(e)),
        }
    }
}

impl Keys {
    /// A key made by `cairn gateway dns` run as root must stay readable
    /// by the hub's service user: new files get the data directory's
    /// owner (a no-op, or refused and let be, for anyone but root).
    fn give_to_hub(&self, path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if let Some(data) = self.dir.parent()
                && let Ok(m) = std::fs::metadata(data)
            {
                let _ = std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()));
            }
        }
    }
}

fn parse(path: &Path, domain: &str, pem: &str) -> Result<KeyPair> {
    let damaged = |why: String| Error::Damaged {
        path: path.to_path_buf(),
        domain: domain.to_string(),
        why,
    };
    // Refuse anything that is not a PKCS#8 key of ours before rcgen guesses.
    PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| damaged(format!("not a PEM private key: {e}")))?;
    KeyPair::from_pem(pem).map_err(|e| damaged(e.to_string()))
}

impl DomainKeys {
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The TXT records that publish the keys.
    pub fn records(&self) -> &[KeyRecord] {
        &self.records
    }

    /// The `DKIM-Signature` header fields (RSA, then Ed25519), CRLF-ended,
    /// to put in front of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sign = |e: mail_auth::Error| Error::Sign(e.to_string());
        let rsa = self.rsa.sign(message).map_err(sign)?;
        let ed = self.ed25519.sign(message).map_err(sign)?;
        let mut out = rsa.to_header().into_bytes();
        out.extend_from_slice(ed.to_header().as_bytes());
        Ok(out)
    }
}

/// The domain of the message's (first) From address, lower case; `None`
/// when it has none that parses.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let end = memchr::memmem::find(message, b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| memchr::memmem::find(message, b"\n\n").map(|p| p + 1))
        .unwrap_or(message.len());
    let parsed = mail_parser::MessageParser::new().parse_headers(&message[..end])?;
    let addr = parsed.from()?.first()?.address()?;
    let (_, domain) = addr.rsplit_once('@')?;
    Some(domain.trim_end_matches('.').to_ascii_lowercase())
}

/// The domain to sign as: the From domain when the gateway carries it,
/// else `own` (a signature that does not align with From, but still
/// vouches for the gateway).
pub fn signing_domain(message: &[u8], carried: &[String], own: &str) -> String {
    from_domain(message)
        .filter(|d| carried.iter().any(|c| c.eq_ignore_ascii_case(d)))
        .unwrap_or_else(|| own.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Alice <alice@camp-a.example>\r\nTo: carol@internet.example\r\nSubject: hi\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@camp-a.example>\r\n\r\nhello\r\n";

    #[test]
    fn keys_are_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::new(dir.path().join("dkim"));
        let first = keys.domain("Camp-A.example").unwrap();
        let again = keys.domain("camp-a.example").unwrap();
        assert_eq!(first.records(), again.records());
        assert_eq!(
            first.records()[0].name,
            "cairn-rsa._domainkey.camp-a.example"
        );
        assert!(
            first.records()[0]
                .value
                .starts_with("v=DKIM1; k=rsa; p=MII")
        );
        assert!(
            first.records()[1]
                .value
                .starts_with("v=DKIM1; k=ed25519; p=")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("dkim")), 0o700);
            assert_eq!(
                mode(&dir.path().join("dkim/camp-a.example.rsa2048.pem")),
                0o600
            );
        }
        let other = keys.domain("camp-b.example").unwrap();
        assert_ne!(other.records()[0].value, first.records()[0].value);
    }

    #[cfg(unix)]
    #[test]
    fn keys_made_by_root_belong_to_the_data_directorys_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // As root (CI), the data directory belongs to another user, as
        // the appliance's belongs to `cairn`; otherwise both are ours.
        let _ = std::os::unix::fs::chown(&data, Some(65534), Some(65534));
        let owner = std::fs::metadata(&data).unwrap().uid();
        Keys::new(data.join("dkim"))
            .domain("camp-a.example")
            .unwrap();
        for f in [
            "dkim",
            "dkim/camp-a.example.rsa2048.pem",
            "dkim/camp-a.example.ed25519.pem",
        ] {
            assert_eq!(std::fs::metadata(data.join(f)).unwrap().uid(), owner, "{f}");
        }
    }

    #[test]
    fn a_damaged_key_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dkim")).unwrap();
        let path = dir.path().join("dkim/camp-a.example.rsa2048.pem");
        std::fs::write(&path, "not a key").unwrap();
        let err = Keys::new(dir.path().join("dkim"))
            .domain("camp-a.example")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cannot be used") && err.contains("--new-keys"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }

    #[test]
    fn signatures_name_the_domain_and_oversign() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::new(dir.path()).domain("camp-a.example").unwrap();
        let sig = String::from_utf8(keys.sign(MESSAGE).unwrap()).unwrap();
        assert_eq!(sig.matches("DKIM-Signature:").count(), 2, "{sig}");
        assert!(sig.contains("a=rsa-sha256") && sig.contains("a=ed25519-sha256"));
        assert!(sig.contains("c=relaxed/relaxed") && sig.contains("d=camp-a.example"));
        let h = sig.split("h=").nth(1).unwrap().split(';').next().unwrap();
        let h: String = h.split_whitespace().collect();
        assert_eq!(h.to_ascii_lowercase().matches("from").count(), 2, "{h}");
        assert!(sig.ends_with("\r\n"));
    }

    #[test]
    fn the_signing_domain_is_the_from_domain_when_carried() {
        let carried = vec!["camp-a.example".to_string(), "gw.example".to_string()];
        assert_eq!(
            signing_domain(MESSAGE, &carried, "gw.example"),
            "camp-a.example"
        );
        assert_eq!(
            signing_domain(b"From: x@elsewhere.example\r\n\r\n", &carried, "gw.example"),
            "gw.example"
        );
        assert_eq!(
            signing_domain(b"Subject: none\n\nx", &carried, "GW.example"),
            "gw.example"
        );
    }
}
