//! A raw IMAP client for exact protocol tests: tagged commands, untagged
//! responses collected, literals in responses read by their length.
#![allow(dead_code)]

use super::smtp::{Io, hub_cert};
use cairn::app::Hub;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every wait in these tests is bounded; a missing response fails loudly.
pub const WATCHDOG: Duration = Duration::from_secs(20);

pub struct Imap {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    next_tag: u32,
}

/// One response: untagged lines (literals inlined) and the tagged line.
#[derive(Debug, Default)]
pub struct Reply {
    pub untagged: Vec<String>,
    pub tagged: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }
    pub fn all(&self) -> String {
        format!("{}\n{}", self.untagged.join("\n"), self.tagged)
    }
}

impl Imap {
    pub async fn tls(addr: SocketAddr, hub: &Hub) -> (Imap, String) {
        Self::tls_with(addr, hub_cert(hub)).await
    }

    pub async fn tls_with(
        addr: SocketAddr,
        cert: rustls::pki_types::CertificateDer<'static>,
    ) -> (Imap, String) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let s = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let mut c = Imap {
            stream: Box::new(s),
            buf: Vec::new(),
            next_tag: 1,
        };
        let greeting = c.line().await.expect("greeting");
        (c, greeting)
    }

    pub async fn plain(addr: SocketAddr) -> (Imap, String) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut c = Imap {
            stream: Box::new(tcp),
            buf: Vec::new(),
            next_tag: 1,
        };
        let greeting = c.line().await.expect("greeting");
        (c, greeting)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).await.is_ok() {
            let _ = self.stream.flush().await;
        }
    }

    /// One logical line, with any `{n}` literals read and inlined.
    /// `None` at the end of the stream.
    pub async fn line(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let pos = loop {
                if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                    break p;
                }
                if !self.fill().await {
                    return None;
                }
            };
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            out.extend_from_slice(trimmed);
            // A literal announcement: `{n}` at the end of the line.
            let text = String::from_utf8_lossy(trimmed);
            let Some(n) = text
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            else {
                return Some(String::from_utf8_lossy(&out).into_owned());
            };
            while self.buf.len() < n {
                if !self.fill().await {
                    return None;
                }
            }
            let lit: Vec<u8> = self.buf.drain(..n).collect();
            out.extend_from_slice(b"\n");
            out.extend_from_slice(&lit);
        }
    }

    /// Wait (bounded) until `n` bytes of the server's output have come,
    /// without consuming them.
    pub async fn wait_bytes(&mut self, n: usize) {
        while self.buf.len() < n {
            assert!(self.fill().await, "connection closed");
        }
    }

    async fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        match tokio::time::timeout(WATCHDOG, self.stream.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Ok(_) => false,
            Err(_) => panic!("no data from the server within {WATCHDOG:?}"),
        }
    }

    /// Send `TAG command` and collect everything up to the tagged reply.
    pub async fn cmd(&mut self, command: &str) -> Reply {
        let tag = format!("A{:04}", self.next_tag);
        self.next_tag += 1;
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until_tagged(&tag).await
    }

    pub async fn until_tagged(&mut self, tag: &str) -> Reply {
        let mut r = Reply::default();
        loop {
            let Some(line) = self.line().await else {
                r.tagged = "(connection closed)".into();
                return r;
            };
            if line.starts_with(&format!("{tag} ")) {
                r.tagged = line;
                return r;
            }
            r.untagged.push(line);
        }
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Reply {
        self.cmd(&format!("LOGIN \"{user}\" \"{password}\"")).await
    }

    /// Start IDLE; returns once the server said `+`.
    pub async fn idle(&mut self) -> String {
        let tag = format!("A{:04}", self.next_tag);
        self.next_tag += 1;
        self.send(format!("{tag} IDLE\r\n").as_bytes()).await;
        let mut pending = Vec::new();
        loop {
            let l = self.line().await.expect("IDLE continuation");
            if l.starts_with('+') {
                break;
            }
            pending.push(l);
        }
        tag
    }

    /// Wait (bounded) for an untagged line containing `needle`.
    pub async fn wait_for(&mut self, needle: &str, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + WATCHDOG;
        loop {
            let line = tokio::time::timeout_at(deadline, self.line())
                .await
                .unwrap_or_else(|_| panic!("{what}: no `{needle}` within {WATCHDOG:?}"))
                .unwrap_or_else(|| panic!("{what}: connection closed"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub async fn done(&mut self, tag: &str) -> Reply {
        self.send(b"DONE\r\n").await;
        self.until_tagged(tag).await
    }
}
