//! A small DNS server on loopback for gateway tests: MX and A records from
//! a table; NXDOMAIN for names it does not know; SERVFAIL for names marked
//! broken (a resolver having a bad day).
#![allow(dead_code)]

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::net::{Ipv4Addr, SocketAddr};

#[derive(Clone, Debug)]
pub enum Entry {
    /// The domain's mail goes to this host.
    Mx(&'static str),
    /// The host's address.
    A(Ipv4Addr),
    /// Answer SERVFAIL.
    Broken,
}

/// Serve `zone` on a UDP port of 127.0.0.1; returns the address.
pub async fn serve(zone: Vec<(&'static str, Entry)>) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_op_code(q.op_code())
                .set_recursion_desired(q.recursion_desired())
                .set_recursion_available(true)
                .set_authoritative(true);
            let mut code = ResponseCode::NXDomain;
            for query in q.queries() {
                r.add_query(query.clone());
                let name = query.name().to_utf8().trim_end_matches('.').to_lowercase();
                for (n, e) in &zone {
                    if *n != name {
                        continue;
                    }
                    if code == ResponseCode::NXDomain {
                        code = ResponseCode::NoError;
                    }
                    match (e, query.query_type()) {
                        (Entry::Broken, _) => code = ResponseCode::ServFail,
                        (Entry::Mx(host), RecordType::MX) => {
                            r.add_answer(Record::from_rdata(
                                query.name().clone(),
                                60,
                                RData::MX(MX::new(
                                    10,
                                    Name::from_utf8(format!("{host}.")).unwrap(),
                                )),
                            ));
                        }
                        (Entry::A(ip), RecordType::A) => {
                            r.add_answer(Record::from_rdata(
                                query.name().clone(),
                                60,
                                RData::A(A(*ip)),
                            ));
                        }
                        _ => {}
                    }
                }
            }
            r.set_response_code(code);
            if let Ok(bytes) = r.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    addr
}
