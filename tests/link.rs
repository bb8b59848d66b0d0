//! Live links between real hubs over TCP: mail both ways in one sync,
//! a cut connection that resumes, strangers and garbage refused.

mod common;
use cairn::relay::link::{self, LinkError, LinkProgress};
use cairn::relay::node;
use cairn::store::SyncCounts;
use common::relay::*;
use common::smtp::inbox;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

async fn sync_over(
    from: &Node,
    peer: &str,
    stream: Option<TcpStream>,
) -> (Result<SyncCounts, LinkError>, LinkProgress) {
    let p = from.hub.relay.peer(peer).await.unwrap();
    let (tx, _rx) = watch::channel(LinkProgress::default());
    let r = link::sync_with(&from.hub.relay, &p, stream, &tx).await;
    let progress = tx.borrow().clone();
    (r, progress)
}

async fn sync(from: &Node, peer: &str) -> (Result<SyncCounts, LinkError>, LinkProgress) {
    sync_over(from, peer, None).await
}

/// The newest sync of `node`, once it has finished.
async fn last_sync(node: &Node) -> cairn::store::SyncRow {
    for _ in 0..200 {
        if let Some(r) = node.hub.store.sync_history(1).await.unwrap().pop()
            && r.finished_at.is_some()
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no finished sync on {}", node.hub.name);
}

fn partials(node: &Node) -> Vec<u64> {
    std::fs::read_dir(node.hub.report.data_dir.join("partial"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect()
}

/// Forwards one connection to `to`. Bytes from the dialler past `cut` are
/// not passed on: the connection to `to` is closed there, as when a link
/// drops (what was forwarded still arrives). The byte at `flip` is
/// inverted on the way.
async fn proxy(to: SocketAddr, cut: Option<u64>, flip: Option<u64>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (down, _) = l.accept().await.unwrap();
        let up = TcpStream::connect(to).await.unwrap();
        let (mut dr, mut dw) = down.into_split();
        let (mut ur, mut uw) = up.into_split();
        let forward = async move {
            let mut n = 0u64;
            let mut buf = vec![0u8; 16 << 10];
            loop {
                let k = dr.read(&mut buf).await.unwrap_or(0);
                if k == 0 {
                    break;
                }
                let chunk = &mut buf[..k];
                if let Some(f) = flip
                    && (n..n + k as u64).contains(&f)
                {
                    chunk[(f - n) as usize] ^= 0xff;
                }
                if let Some(c) = cut
                    && n + k as u64 > c
                {
                    let _ = uw.write_all(&chunk[..(c - n) as usize]).await;
                    break;
                }
                if uw.write_all(chunk).await.is_err() {
                    break;
                }
                n += k as u64;
            }
            let _ = uw.shutdown().await;
        };
        let back = async move {
            let _ = tokio::io::copy(&mut ur, &mut dw).await;
            let _ = dw.shutdown().await;
        };
        tokio::join!(forward, back);
    });
    addr
}

#[tokio::test]
async fn one_sync_carries_mail_both_ways_and_the_next_moves_nothing() {
    let (a, b) = pair(|_| {}).await;
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "ab").await;
    send(&b, "bob@camp-b.example", "alice@camp-a.example", "ba").await;
    routed(&a).await;
    routed(&b).await;
    let queued = |n: &Node| {
        let store = n.hub.store.clone();
        async move {
            let o = store.outbox().await.unwrap();
            assert_eq!(o.len(), 1);
            store.blob_read(&o[0].blob_hash).await.unwrap()
        }
    };
    let sent_ab = queued(&a).await;
    let sent_ba = queued(&b).await;
    assert!(inbox(&b.hub, "bob@camp-b.example").await.is_empty());

    let (r, p) = sync(&a, "camp-b").await;
    let counts = r.expect("the sync succeeds");
    assert_eq!((counts.items_out, counts.items_in), (1, 1), "{p:?}");
    assert_eq!((p.to_send, p.to_receive), (1, 1));
    assert!(counts.bytes_out > 0 && counts.bytes_in > 0);

    let bob = inbox(&b.hub, "bob@camp-b.example").await;
    assert_eq!(bob.len(), 1);
    let got = b.hub.store.blob_read(&bob[0].blob_hash).await.unwrap();
    assert!(got == sent_ab, "bob's copy differs from what left A");
    let alice = inbox(&a.hub, "alice@camp-a.example").await;
    assert_eq!(alice.len(), 1);
    let got = a.hub.store.blob_read(&alice[0].blob_hash).await.unwrap();
    assert!(got == sent_ba, "alice's copy differs from what left B");

    // Acknowledged both ways at once: no outbox left on either side.
    assert!(a.hub.store.outbox().await.unwrap().is_empty());
    assert!(b.hub.store.outbox().await.unwrap().is_empty());

    let on_b = last_sync(&b).await;
    assert_eq!(
        (
            on_b.carrier.as_str(),
            on_b.peer_name.as_str(),
            on_b.items_in,
            on_b.items_out
        ),
        ("link (answered)", "camp-a", 1, 1)
    );
    assert_eq!(on_b.error, None);
    let on_a = last_sync(&a).await;
    assert_eq!(
        (on_a.carrier.as_str(), on_a.items_out),
        ("link (dialled)", 1)
    );
    for n in [&a, &b] {
        for peer in n.hub.store.peer_list().await.unwrap() {
            assert!(n.hub.store.acks_due(peer.id).await.unwrap().is_empty());
        }
    }

    // Nothing new: the next sync moves no item and no byte.
    let (r, _) = sync(&a, "camp-b").await;
    assert_eq!(r.unwrap(), SyncCounts::default());
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    assert_eq!(inbox(&a.hub, "alice@camp-a.example").await.len(), 1);

    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

#[tokio::test]
async fn a_cut_connection_resumes_where_it_stopped_without_duplicates() {
    let (a, b) = pair(|c| c.mail.require_encryption = false).await;
    for i in 0..3 {
        send_plain(
            &a,
            "alice@camp-a.example",
            "bob@camp-b.example",
            &format!("small{i}"),
            500,
        )
        .await;
    }
    send_plain(
        &a,
        "alice@camp-a.example",
        "bob@camp-b.example",
        "big",
        3 << 20,
    )
    .await;
    routed(&a).await;
    let peer = a.hub.relay.peer("camp-b").await.unwrap();
    let queued = a.hub.store.outbox_for_peer(peer.id).await.unwrap();
    let big = queued.iter().map(|r| r.size as u64).max().unwrap();
    assert!(big > 3 << 20);

    // The connection drops 1.5 MB into the big item (the small ones go first).
    let via = proxy(link_addr(&b), Some(1_500_000), None).await;
    let (r, _) = sync_over(&a, "camp-b", Some(TcpStream::connect(via).await.unwrap())).await;
    assert!(r.is_err(), "the cut sync fails: {r:?}");
    let cut = last_sync(&b).await;
    assert!(cut.error.is_some(), "{cut:?}");
    assert_eq!(cut.items_in, 3, "the small items were taken: {cut:?}");
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 3);
    let part = partials(&b);
    assert_eq!(part.len(), 1, "the big item is kept half-received");
    assert!(part[0] > 1_000_000 && part[0] < big, "{part:?}");

    // The next sync sends only the rest of the big item.
    let (r, p) = sync(&a, "camp-b").await;
    let counts = r.expect("the second sync succeeds");
    assert_eq!(
        counts.bytes_out,
        big - part[0],
        "only the missing bytes went: {p:?}"
    );
    let bob = inbox(&b.hub, "bob@camp-b.example").await;
    assert_eq!(bob.len(), 4, "each message once");
    let mut sizes: Vec<i64> = bob.iter().map(|m| m.size).collect();
    sizes.sort();
    assert_eq!(*sizes.last().unwrap() as u64, big);
    assert!(partials(&b).is_empty());
    assert!(a.hub.store.outbox().await.unwrap().is_empty());

    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

#[tokio::test]
async fn strangers_and_garbage_are_refused_and_the_hub_keeps_serving() {
    let (a, b) = pair(|_| {}).await;
    let c = node_for("camp-c", "camp-c.example", |_| {}).await;
    let b_card = b.hub.relay.card(vec![link_addr(&b).to_string()]);
    c.hub.relay.add_peer(&b_card, None).await.unwrap();

    // C knows B, B does not know C: refused on both sides, saying why.
    let (client, server) = tokio::io::duplex(1 << 16);
    let answering = {
        let relay = b.hub.relay.clone();
        tokio::spawn(async move { link::answer(&relay, server, "test").await })
    };
    let peer_b = c.hub.relay.peer("camp-b").await.unwrap();
    let (tx, _rx) = watch::channel(LinkProgress::default());
    let dialled = link::sync_with(&c.hub.relay, &peer_b, Some(client), &tx).await;
    let answered = answering.await.unwrap();
    let c_print = node::fingerprint(&c.hub.relay.identity().public);
    match answered {
        Err(LinkError::UnknownPeer(f)) => assert_eq!(f, c_print),
        other => panic!("B should refuse the stranger: {other:?}"),
    }
    assert!(
        matches!(dialled, Err(LinkError::HandshakeRefused)),
        "{dialled:?}"
    );
    assert!(dialled.unwrap_err().to_string().contains("cairn peer add"));
    // Over TCP too.
    let (r, _) = sync(&c, "camp-b").await;
    assert!(matches!(r, Err(LinkError::HandshakeRefused)), "{r:?}");

    // Not the link protocol, a newer version, a garbage handshake.
    for (bytes, want) in [
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "NotALink"),
        (b"CAIRNLNK\x09".to_vec(), "Version"),
        (
            [b"CAIRNLNK\x01\x00\x60".to_vec(), vec![0x5a; 0x60]].concat(),
            "Handshake",
        ),
    ] {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&bytes).await.unwrap();
        let r = link::answer(&b.hub.relay, server, "test").await;
        assert!(format!("{r:?}").contains(want), "{want}: {r:?}");
        drop(client);
    }
    let mut raw = TcpStream::connect(link_addr(&b)).await.unwrap();
    raw.write_all(b"\x00\x05hello garbage").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), raw.read_to_end(&mut rest)).await;

    // A frame flipped in transit fails authentication: the sync stops and
    // nothing arrives twice or half.
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    let via = proxy(link_addr(&b), None, Some(300)).await;
    let (r, _) = sync_over(&a, "camp-b", Some(TcpStream::connect(via).await.unwrap())).await;
    assert!(r.is_err(), "{r:?}");
    let on_b = last_sync(&b).await;
    assert!(
        on_b.error
            .as_deref()
            .is_some_and(|e| e.contains("authentication")),
        "{on_b:?}"
    );
    assert!(inbox(&b.hub, "bob@camp-b.example").await.is_empty());

    // B still serves its peer.
    let (r, _) = sync(&a, "camp-b").await;
    assert_eq!(r.unwrap().items_out, 1);
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);

    for n in [a, b, c] {
        n.hub.shutdown().await;
    }
}

/// `from` submits an encrypted message with an outer Autocrypt header
/// carrying `key` (as older Delta Chat, K-9 and Thunderbird send it) and
/// about `pad` bytes of padding headers; returns the message.
async fn send_keyed(node: &Node, from: &str, to: &str, tag: &str, key: &str, pad: usize) {
    let mut autocrypt = format!("Autocrypt: addr={from}; prefer-encrypt=mutual; keydata=");
    for (i, line) in key.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            autocrypt.push_str("\r\n ");
        }
        autocrypt.push_str(std::str::from_utf8(line).unwrap());
    }
    autocrypt.push_str("\r\n");
    let headers = format!("Message-ID: <{tag}@test>\r\n{autocrypt}");
    let body = common::smtp::encrypted_padded(from, &headers, pad);
    let addr = node.hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let (mut c, _) = common::smtp::Client::tls(addr, &node.hub).await;
    c.cmd("EHLO phone").await;
    assert!(
        c.login(from, common::smtp::PASSWORD)
            .await
            .starts_with("235")
    );
    let r = c.mail(from, &[to], &body).await;
    assert!(r.starts_with("250"), "{r}");
}

/// One sync of A with B over an ordered record carrier (as the radio's
/// session gives), both hubs saying they take keys by reference. Records
/// from A past `cut` are lost and the carrier closes, as when the radio
/// link breaks. Returns A's result and progress.
async fn record_sync(
    a: &Node,
    b: &Node,
    cut: Option<usize>,
) -> (Result<SyncCounts, LinkError>, LinkProgress) {
    use tokio::sync::mpsc;
    let options = link::ExchangeOptions {
        data_chunk: 256,
        keyrefs: true,
        close_wait: Duration::from_secs(2),
        ..Default::default()
    };
    let pa = a.hub.relay.peer("camp-b").await.unwrap();
    let pb = b.hub.relay.peer("camp-a").await.unwrap();
    let (a_out, mut a_wire) = mpsc::channel::<Vec<u8>>(4);
    let (to_b, b_in) = mpsc::channel(4);
    let (b_out, a_in) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut n = 0;
        while let Some(r) = a_wire.recv().await {
            n += 1;
            if cut.is_some_and(|c| n > c) || to_b.send(r).await.is_err() {
                break;
            }
        }
    });
    let (pa_tx, _) = watch::channel(LinkProgress::default());
    let (pb_tx, _) = watch::channel(LinkProgress::default());
    let (ra, _rb) = tokio::join!(
        link::exchange_records(&a.hub.relay, &pa, a_out, a_in, &pa_tx, &options, "test"),
        link::exchange_records(&b.hub.relay, &pb, b_out, b_in, &pb_tx, &options, "test"),
    );
    let p = pa_tx.borrow().clone();
    (ra, p)
}

async fn forget_keys_on(n: &Node, table: &str) {
    let db = n.hub.report.data_dir.join("cairn.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn autocrypt_keys_cross_once_then_by_reference() {
    let (a, b) = pair(|_| {}).await;
    let key: String = (0..3000)
        .map(|i| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i * 37 + 11) % 64]
                as char
        })
        .collect();
    let bob = "bob@camp-b.example";
    let alice = "alice@camp-a.example";
    let sent = async |tag: &str, pad: usize| {
        send_keyed(&a, alice, bob, tag, &key, pad).await;
        routed(&a).await;
        let o = a.hub.store.outbox().await.unwrap();
        let o = o.iter().max_by_key(|o| o.id).unwrap();
        (
            a.hub.store.blob_read(&o.blob_hash).await.unwrap(),
            o.size as u64,
        )
    };
    let received = async |n: usize| {
        let got = inbox(&b.hub, bob).await;
        assert_eq!(got.len(), n, "bob's inbox");
        b.hub.store.blob_read(&got[n - 1].blob_hash).await.unwrap()
    };

    // The first message carries the key in full; B keeps it.
    let (m1, size1) = sent("k1", 4000).await;
    let (r, p) = record_sync(&a, &b, None).await;
    assert_eq!(r.unwrap().items_out, 1, "{p:?}");
    assert!(p.bytes_out >= size1, "{} of {size1}", p.bytes_out);
    assert!(received(1).await == m1, "bob's copy differs");

    // The second names it: ~3 KB less on the carrier, the same message.
    let (m2, size2) = sent("k2", 4000).await;
    let (r, p) = record_sync(&a, &b, None).await;
    assert_eq!(r.unwrap().items_out, 1, "{p:?}");
    assert!(
        p.bytes_out + 2900 <= size2,
        "{} bytes for a message of {size2}",
        p.bytes_out
    );
    assert!(received(2).await == m2, "bob's copy differs");

    // Cut in the middle of a large one that names the key; A then
    // forgets what B holds (as after an unresolved key elsewhere): the
    // transfer still resumes in the form it began with.
    let (m3, _) = sent("k3", 20_000).await;
    let (r, _) = record_sync(&a, &b, Some(30)).await;
    assert!(r.is_err(), "the cut sync fails");
    let part: Vec<_> = std::fs::read_dir(b.hub.report.data_dir.join("partial"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(part.len(), 1);
    assert!(part[0].file_name().to_string_lossy().ends_with("-k"));
    let had = part[0].metadata().unwrap().len();
    assert!(had > 1000, "{had} bytes arrived before the cut");
    forget_keys_on(&a, "keys_held").await;
    let (r, p) = record_sync(&a, &b, None).await;
    assert_eq!(r.unwrap().items_out, 1, "{p:?}");
    assert!(received(3).await == m3, "bob's resumed copy differs");
    assert!(partials(&b).is_empty());

    // A forgot: k4 carries the key in full again and B acknowledges it.
    // Then B loses the keys it kept; k5 names the key, B cannot resolve
    // it and turns k5 alone away.
    let (_, _) = sent("k4", 4000).await;
    let (r, p) = record_sync(&a, &b, None).await;
    assert_eq!(r.unwrap().items_out, 1, "{p:?}");
    forget_keys_on(&b, "keys_learned").await;
    let (m5, size5) = sent("k5", 4000).await;
    let (r, p) = record_sync(&a, &b, None).await;
    let c = r.expect("an unresolved key does not break the sync");
    assert_eq!(c.items_out, 0, "{p:?}");
    assert_eq!(inbox(&b.hub, bob).await.len(), 4, "k5 was not taken");
    assert_eq!(a.hub.store.outbox().await.unwrap().len(), 1, "k5 waits");
    // The next sync carries it in full, once.
    let (r, p) = record_sync(&a, &b, None).await;
    assert_eq!(r.unwrap().items_out, 1, "{p:?}");
    assert!(p.bytes_out >= size5, "{} of {size5}", p.bytes_out);
    assert!(received(5).await == m5, "bob's copy differs");
    assert!(a.hub.store.outbox().await.unwrap().is_empty());
    let (r, _) = record_sync(&a, &b, None).await;
    assert_eq!(r.unwrap(), SyncCounts::default());
    assert_eq!(inbox(&b.hub, bob).await.len(), 5, "nothing twice");

    a.hub.shutdown().await;
    b.hub.shutdown().await;
}
