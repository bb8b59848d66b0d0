//! The hub's TLS key and self-signed certificate, made on first start.
//!
//! What Delta Chat needs (its "accept invalid certificates" mode, which
//! DCLOGIN QR codes select with `ic=3`, takes any certificate; strict mode
//! with a `_`-prefixed host name checks the SAN and the path rules):
//! EC P-256, `CA:FALSE`, extended key usage serverAuth (+ clientAuth), and a
//! subjectAltName with every name and IP address phones use.
//!
//! The validity runs from 2000 to 2100: a Raspberry Pi has no clock battery
//! and may boot believing it is 1970 or last year.
//!
//! When the configured names change, the certificate is re-issued with the
//! same key, so clients that pinned the key (Delta Chat pins SPKI hashes)
//! keep trusting it.

use crate::config::Hostname;
use crate::domain::Domain;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({why}): delete the tls folder to make a new key and certificate")]
    Damaged { path: PathBuf, why: String },
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate does not fit its key: {0}")]
    Rustls(#[from] rustls::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Paths and facts about the hub's certificate.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
    /// SHA-256 of the DER certificate, as `AB:CD:…`, for people to compare.
    pub fingerprint: String,
    /// The names in its subjectAltName, in the order written.
    pub names: Vec<String>,
    pub der: CertificateDer<'static>,
}

/// What `ensure` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// A new key and certificate.
    New,
    /// The same key, a new certificate for changed names.
    Reissued,
    /// Both as they were.
    Reused,
}

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";
/// The SAN list the certificate was made for, one per line: lets a restart
/// notice that the configured names changed without an X.509 parser.
const NAMES_FILE: &str = "names.txt";

/// The SAN entries for the configured names, deduplicated, in order.
pub fn san_names(hostnames: &[Hostname], domains: &[Domain]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !names.contains(&s) {
            names.push(s);
        }
    };
    for h in hostnames {
        push(h.to_string());
    }
    for d in domains {
        match d {
            Domain::Literal(ip) => push(ip.to_string()),
            Domain::Name(n) => push(n.clone()),
        }
    }
    names
}

/// Make the key and certificate in `dir` if missing, re-issue the
/// certificate if the names changed, and return what is there.
pub fn ensure(dir: &Path, names: &[String]) -> Result<(Certificate, Made)> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let key_path = dir.join(KEY_FILE);
    let cert_path = dir.join(CERT_FILE);
    let names_path = dir.join(NAMES_FILE);

    let (key, made) = if key_path.exists() && cert_path.exists() {
        let pem = std::fs::read_to_string(&key_path).map_err(|source| Error::Read {
            path: key_path.clone(),
            source,
        })?;
        let key = KeyPair::from_pem(&pem).map_err(|e| Error::Damaged {
            path: key_path.clone(),
            why: e.to_string(),
        })?;
        let old_names = std::fs::read_to_string(&names_path).unwrap_or_default();
        let old: Vec<&str> = old_names.lines().collect();
        if old == names.iter().map(String::as_str).collect::<Vec<_>>() {
            (key, Made::Reused)
        } else {
            (key, Made::Reissued)
        }
    } else {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        write_atomic(&key_path, key.serialize_pem().as_bytes(), true)?;
        (key, Made::New)
    };

    if made != Made::Reused {
        let cert = issue(&key, names)?;
        write_atomic(&cert_path, cert.pem().as_bytes(), false)?;
        write_atomic(&names_path, (names.join("\n") + "\n").as_bytes(), false)?;
    }

    let cert = load_certificate(&cert_path, &key_path)?;
    // Prove the pair works before any listener relies on it.
    server_config(&cert)?;
    Ok((cert, made))
}

fn issue(key: &KeyPair, names: &[String]) -> Result<rcgen::Certificate> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "cairn".into()),
    );
    dn.push(DnType::OrganizationName, "cairn hub");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    Ok(params.self_signed(key)?)
}

fn load_certificate(cert_path: &Path, key_path: &Path) -> Result<Certificate> {
    let der = CertificateDer::from_pem_file(cert_path).map_err(|e| Error::Damaged {
        path: cert_path.to_path_buf(),
        why: e.to_string(),
    })?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    let fingerprint = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let names = std::fs::read_to_string(cert_path.with_file_name(NAMES_FILE))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    Ok(Certificate {
        key_path: key_path.to_path_buf(),
        cert_path: cert_path.to_path_buf(),
        fingerprint,
        names,
        der,
    })
}

/// A rustls server configuration for the hub's certificate.
pub fn server_config(cert: &Certificate) -> Result<Arc<rustls::ServerConfig>> {
    let key = PrivateKeyDer::from_pem_file(&cert.key_path).map_err(|e| Error::Damaged {
        path: cert.key_path.clone(),
        why: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)?;
    Ok(Arc::new(config))
}

/// The server side of a TLS handshake on `io` (a new connection, or one
/// after STARTTLS) with `config`, within `timeout`; `None`, logged, when
/// the client fails it or takes too long.
pub async fn handshake<S>(
    config: &Arc<rustls::ServerConfig>,
    io: S,
    timeout: std::time::Duration,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Write a file so that it is either absent or complete: temp, fsync,
/// rename, fsync dir. The temporary file gets a random name and is
/// created exclusively (O_EXCL, so never through a planted symlink): a
/// root-run command (the appliance's first boot) writes into the data
/// directory, which the hub's own user can write to.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    crate::datadir::write_file(path, bytes, private).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["127.0.0.1".into(), "localhost".into(), "_hub.lan".into()]
    }

    #[test]
    fn new_then_reused_then_reissued_with_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, m1) = ensure(dir.path(), &names()).unwrap();
        assert_eq!(m1, Made::New);
        assert_eq!(c1.names, names());
        let key1 = std::fs::read(&c1.key_path).unwrap();

        let (c2, m2) = ensure(dir.path(), &names()).unwrap();
        assert_eq!(m2, Made::Reused);
        assert_eq!(c1.fingerprint, c2.fingerprint);

        let mut more = names();
        more.push("10.42.0.1".into());
        let (c3, m3) = ensure(dir.path(), &more).unwrap();
        assert_eq!(m3, Made::Reissued);
        assert_ne!(c3.fingerprint, c1.fingerprint);
        assert_eq!(
            std::fs::read(&c3.key_path).unwrap(),
            key1,
            "key must be kept"
        );
        assert_eq!(c3.names, more);
    }

    #[cfg(unix)]
    /// Issue 18, point 8: the hub's user could plant `setup-code.tmp` as
    /// a link to a file root owns, and root's first-boot run wrote
    /// through it.
    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "root's file").unwrap();
        for name in ["setup-code.tmp", "setup-code.txt.tmp", ".cairn-.tmp"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        let target = dir.path().join("setup-code.txt");
        write_atomic(&target, b"code", true).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "code");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Nothing else is left behind.
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 5, "victim, three links, the file");
    }

    #[test]
    fn key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = ensure(dir.path(), &names()).unwrap();
        let mode = std::fs::metadata(&c.key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }

    #[test]
    fn damaged_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &names()).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "not a key").unwrap();
        let e = ensure(dir.path(), &names()).unwrap_err().to_string();
        assert!(
            e.contains("damaged") && e.contains("delete the tls folder"),
            "{e}"
        );
    }

    /// The certificate satisfies a strict rustls client for every SAN name
    /// when trusted as an anchor: CA:FALSE end entity, serverAuth, P-256.
    #[test]
    fn strict_client_accepts_it_for_each_name() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = ensure(dir.path(), &names()).unwrap();
        let server = server_config(&cert).unwrap();
        for name in ["127.0.0.1", "localhost", "_hub.lan"] {
            handshake(&cert, server.clone(), name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let e = handshake(&cert, server, "other.example").unwrap_err();
        assert!(e.contains("NotValidForName"), "{e}");
    }

    /// An in-memory handshake; the server's certificate is the only trust anchor.
    fn handshake(
        cert: &Certificate,
        server: Arc<rustls::ServerConfig>,
        name: &str,
    ) -> Result<(), String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der.clone()).map_err(|e| e.to_string())?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), server_name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()
                .map_err(|e| format!("server: {e:?}"))?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets().map_err(|e| format!("{e:?}"))?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err("handshake did not finish".into())
    }
}
