//! An in-process hub and a raw SMTP client for exact protocol tests.
#![allow(dead_code)]

use cairn::app::Hub;
use cairn::config::{Config, Profile};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PASSWORD: &str = "correct horse battery";

/// A hub on port 0 in a temp directory with accounts alice, bob and carol
/// at its first domain ([127.0.0.1] unless `tweak` changes it), all with
/// [`PASSWORD`].
pub async fn hub(tweak: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Hub) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Config::defaults(Profile::Laptop);
    c.data_dir = tmp.path().join("data");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    c.listen.smtp_submission_tls = vec![any];
    c.listen.smtp_submission = vec![any];
    c.listen.smtp_mx = vec![any];
    c.listen.imap_tls = vec![any];
    c.listen.imap = vec![any];
    c.listen.http = vec![any];
    c.listen.https = vec![];
    c.listen.link = vec![any];
    tweak(&mut c);
    let domains = c.hub.domains.clone();
    let hub = Hub::start(c).await.unwrap();
    let first = domains[0].clone();
    let accounts = cairn::mail::Accounts::new(hub.store.clone(), domains);
    for name in ["alice", "bob", "carol"] {
        let pw = cairn::domain::Password::chosen(PASSWORD).unwrap();
        accounts
            .create(&format!("{name}@{first}"), Some(pw))
            .await
            .unwrap();
    }
    (tmp, hub)
}

/// Messages in the INBOX of `address`.
pub async fn inbox(hub: &Hub, address: &str) -> Vec<cairn::store::MessageRow> {
    let a = cairn::domain::Address::parse(address).unwrap();
    let row = hub.store.account_find(&a).await.unwrap().unwrap();
    let mb = hub.store.inbox(row.id()).await.unwrap();
    hub.store.messages(mb).await.unwrap()
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A raw SMTP client that shows exactly what the server answers.
pub struct Client {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
}

fn tls_config(cert_der: rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub fn hub_cert(hub: &Hub) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(hub.report.data_dir.join("tls/cert.pem"))
        .unwrap()
}

impl Client {
    pub async fn plain(addr: SocketAddr) -> (Client, String) {
        let s = TcpStream::connect(addr).await.unwrap();
        // As mail clients do: no Nagle delay between a body and its final dot.
        s.set_nodelay(true).unwrap();
        let mut c = Client {
            stream: Box::new(s),
            buf: Vec::new(),
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// Implicit TLS, verifying the hub's certificate for 127.0.0.1.
    pub async fn tls(addr: SocketAddr, hub: &Hub) -> (Client, String) {
        Self::tls_with(addr, hub_cert(hub)).await
    }

    /// Implicit TLS against a given certificate; `None` if the connection fails.
    pub async fn try_tls_with(
        addr: SocketAddr,
        cert: rustls::pki_types::CertificateDer<'static>,
    ) -> Option<(Client, String)> {
        let s = TcpStream::connect(addr).await.ok()?;
        s.set_nodelay(true).ok()?;
        let connector = tokio_rustls::TlsConnector::from(tls_config(cert));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let s = connector.connect(name, s).await.ok()?;
        let mut c = Client {
            stream: Box::new(s),
            buf: Vec::new(),
        };
        let greeting = c.reply().await;
        Some((c, greeting))
    }

    pub async fn tls_with(
        addr: SocketAddr,
        cert: rustls::pki_types::CertificateDer<'static>,
    ) -> (Client, String) {
        let s = TcpStream::connect(addr).await.unwrap();
        // As mail clients do: no Nagle delay between a body and its final dot.
        s.set_nodelay(true).unwrap();
        let connector = tokio_rustls::TlsConnector::from(tls_config(cert));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let s = connector.connect(name, s).await.unwrap();
        let mut c = Client {
            stream: Box::new(s),
            buf: Vec::new(),
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// Send STARTTLS and switch to TLS.
    pub async fn starttls(self, hub: &Hub) -> Client {
        self.starttls_with(hub_cert(hub)).await
    }

    /// Send STARTTLS and switch to TLS, trusting `cert` for 127.0.0.1.
    pub async fn starttls_with(self, cert: rustls::pki_types::CertificateDer<'static>) -> Client {
        let mut c = self;
        assert!(c.cmd("STARTTLS").await.starts_with("220"));
        let connector = tokio_rustls::TlsConnector::from(tls_config(cert));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let s = connector.connect(name, c.stream).await.unwrap();
        Client {
            stream: Box::new(s),
            buf: Vec::new(),
        }
    }

    /// Write bytes; a failure (the server went away) shows up as an empty reply.
    pub async fn send(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).await.is_ok() {
            let _ = self.stream.flush().await;
        }
    }

    /// One complete (possibly multi-line) reply, or "" at end of stream.
    pub async fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line).into_owned();
                out.push_str(&line);
                if line.len() < 4 || line.as_bytes()[3] == b' ' {
                    return out;
                }
            }
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut tmp))
                .await
                .expect("reply within 30 s")
                .unwrap_or(0);
            // (A reset connection reads as the end of the stream.)
            if n == 0 {
                return out;
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    pub async fn login(&mut self, user: &str, password: &str) -> String {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.cmd(&format!("AUTH PLAIN {b}")).await
    }

    /// MAIL, RCPTs, DATA with `body`; returns the final reply.
    pub async fn mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if !r.starts_with("250") {
            return r;
        }
        for t in to {
            let r = self.cmd(&format!("RCPT TO:<{t}>")).await;
            if !r.starts_with("250") {
                return r;
            }
        }
        let r = self.cmd("DATA").await;
        if !r.starts_with("354") {
            return r;
        }
        let mut data = body.replace("\r\n", "\n").replace('\n', "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        let stuffed = data.replace("\r\n.", "\r\n..");
        self.send(stuffed.as_bytes()).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

/// A message that passes the encryption rule: PGP/MIME with a key packet
/// and an encrypted-data packet (structure only; no real keys needed).
pub fn encrypted(from: &str) -> String {
    use base64::Engine;
    let mut packets = vec![0xC3, 4, 5, 5, 5, 5]; // SKESK
    packets.extend_from_slice(&[0xD2, 20]);
    packets.extend_from_slice(&[9; 20]); // SEIPD
    let armour = base64::engine::general_purpose::STANDARD.encode(packets);
    format!(
        "From: <{from}>\r\nTo: \"hidden-recipients\": ;\r\nSubject: [...]\r\nUser-Agent: test\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\r\n\
         -----BEGIN PGP MESSAGE-----\r\n\r\n{armour}\r\n-----END PGP MESSAGE-----\r\n\r\n--b--\r\n"
    )
}

/// [`encrypted`] with `headers` (each ending in CRLF) before its Subject,
/// padded with `X-Pad` header lines to about `size` bytes: the benches'
/// 4 KB Delta Chat-like message.
pub fn encrypted_padded(from: &str, headers: &str, size: usize) -> String {
    let base = encrypted(from).replacen("Subject: [...]", &format!("{headers}Subject: [...]"), 1);
    let pad = "X-Pad: ".to_string() + &"p".repeat(70) + "\r\n";
    let header_end = base.find("\r\n\r\n").unwrap();
    let mut m = base[..header_end + 2].to_string();
    while m.len() + base.len() - header_end < size {
        m.push_str(&pad);
    }
    m.push_str(&base[header_end + 2..]);
    m
}
