//! A small DNS server on loopback for gateway tests: MX, A and TXT records
//! from a table that the test may add to while it runs (a key published
//! after the hub made it); NXDOMAIN for names it does not know; SERVFAIL
//! for names marked broken (a resolver having a bad day).
#![allow(dead_code)]

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Entry {
    /// The domain's mail goes to this host.
    Mx(&'static str),
    /// The host's address.
    A(Ipv4Addr),
    /// A text record (SPF, DKIM key, DMARC policy); split into strings of
    /// at most 255 bytes on the wire as RFC 7208 §3.3 and RFC 6376 §3.6.2.2
    /// expect readers to join again.
    Txt(String),
    /// Answer SERVFAIL.
    Broken,
}

/// The records a running server answers from.
#[derive(Clone, Default)]
pub struct Zone(Arc<Mutex<Vec<(String, Entry)>>>);

impl Zone {
    pub fn new(records: Vec<(&str, Entry)>) -> Zone {
        let z = Zone::default();
        for (n, e) in records {
            z.add(n, e);
        }
        z
    }

    /// Publish one more record.
    pub fn add(&self, name: &str, entry: Entry) {
        self.0
            .lock()
            .unwrap()
            .push((name.trim_end_matches('.').to_lowercase(), entry));
    }

    /// Withdraw every record of `name`.
    pub fn remove(&self, name: &str) {
        let name = name.trim_end_matches('.').to_lowercase();
        self.0.lock().unwrap().retain(|(n, _)| *n != name);
    }

    fn answer(&self, q: &Message) -> Message {
        let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
        r.metadata.recursion_desired = q.metadata.recursion_desired;
        r.metadata.recursion_available = true;
        r.metadata.authoritative = true;
        let mut code = ResponseCode::NXDomain;
        let zone = self.0.lock().unwrap().clone();
        for query in &q.queries {
            r.add_query(query.clone());
            let name = query.name.to_utf8().trim_end_matches('.').to_lowercase();
            for (n, e) in &zone {
                if *n != name {
                    continue;
                }
                if code == ResponseCode::NXDomain {
                    code = ResponseCode::NoError;
                }
                let data = match (e, query.query_type) {
                    (Entry::Broken, _) => {
                        code = ResponseCode::ServFail;
                        continue;
                    }
                    (Entry::Mx(host), RecordType::MX) => {
                        RData::MX(MX::new(10, Name::from_utf8(format!("{host}.")).unwrap()))
                    }
                    (Entry::A(ip), RecordType::A) => RData::A(A(*ip)),
                    (Entry::Txt(text), RecordType::TXT) => {
                        let parts = text
                            .as_bytes()
                            .chunks(255)
                            .map(|c| String::from_utf8_lossy(c).into_owned())
                            .collect();
                        RData::TXT(TXT::new(parts))
                    }
                    _ => continue,
                };
                r.add_answer(Record::from_rdata(query.name.clone(), 60, data));
            }
        }
        r.metadata.response_code = code;
        r
    }
}

/// A DNS server answering from `zone` on UDP (and TCP, for answers too
/// long for a datagram) at `bind`; returns the address it listens on.
pub async fn serve_zone(bind: SocketAddr, zone: Zone) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind(bind).await.unwrap();
    let addr = sock.local_addr().unwrap();
    let z = zone.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = z.answer(&q);
            let mut bytes = r.to_vec().unwrap_or_default();
            if bytes.len() > 512 && q.edns.is_none() {
                r = r.truncate();
                bytes = r.to_vec().unwrap_or_default();
            }
            let _ = sock.send_to(&bytes, from).await;
        }
    });
    if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = tcp.accept().await {
                let z = zone.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok(len) = s.read_u16().await else { return };
                        let mut buf = vec![0u8; len as usize];
                        if s.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        let Ok(q) = Message::from_vec(&buf) else {
                            return;
                        };
                        let bytes = z.answer(&q).to_vec().unwrap_or_default();
                        let _ = s.write_u16(bytes.len() as u16).await;
                        if s.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    addr
}

/// Serve `zone` on a port of 127.0.0.1; returns the address.
pub async fn serve(zone: Vec<(&'static str, Entry)>) -> SocketAddr {
    serve_zone("127.0.0.1:0".parse().unwrap(), Zone::new(zone)).await
}
