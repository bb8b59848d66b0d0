//! Tests of the bundle codec (relay/bundle.rs).

use super::*;
use proptest::prelude::*;

#[test]
fn the_not_a_bundle_message_names_the_magic() {
    let magic = std::str::from_utf8(MAGIC).unwrap();
    assert!(BundleError::NotABundle.to_string().contains(magic));
}

const LIMITS: Limits = Limits {
    max_plain: 64 << 20,
    max_record: 32 << 20,
};

struct Keys {
    a: ([u8; 32], NodeKey),
    b: ([u8; 32], NodeKey),
}

fn keys() -> Keys {
    Keys {
        a: generate_keypair(),
        b: generate_keypair(),
    }
}

fn item(n: u8, size: usize) -> Item {
    Item {
        id: [n; 32],
        mail_from: format!("user{n}@camp-a.example"),
        rcpts: vec!["bob@camp-b.example".into(), "carol@camp-b.example".into()],
        age_ms: 1234 * u64::from(n),
        lifetime_ms: 14 * 24 * 3600 * 1000,
        hops: n % 4,
        message: (0..size).map(|i| (i * 7 + usize::from(n)) as u8).collect(),
    }
}

fn write(k: &Keys, items: &[Item], acks: &[ContentId]) -> Vec<u8> {
    let header = Header {
        from: k.a.1,
        to: k.b.1,
        seq: 7,
    };
    let mut w = BundleWriter::new(Vec::new(), &header, &k.a.0).unwrap();
    for i in items {
        w.item(i).unwrap();
    }
    w.acks(acks).unwrap();
    w.finish().unwrap()
}

fn read(k: &Keys, bytes: &[u8], limits: Limits) -> Result<(Header, Vec<Record>)> {
    let mut r = bytes;
    let header = Header::read(&mut r)?;
    let mut reader = BundleReader::open(r, &header, &k.b.0, limits)?;
    let mut out = Vec::new();
    while let Some(rec) = reader.next_record()? {
        out.push(rec);
    }
    Ok((header, out))
}

#[test]
fn round_trip_with_items_larger_than_a_chunk() {
    let k = keys();
    let items = vec![item(1, 10), item(2, 200_000), item(3, 0)];
    let bytes = write(&k, &items, &[[9; 32], [8; 32]]);
    let (h, recs) = read(&k, &bytes, LIMITS).unwrap();
    assert_eq!((h.from, h.to, h.seq), (k.a.1, k.b.1, 7));
    let mut expect: Vec<Record> = items.into_iter().map(Record::Item).collect();
    expect.push(Record::Acks(vec![[9; 32], [8; 32]]));
    assert_eq!(recs, expect);
}

#[test]
fn another_node_cannot_read_it() {
    let k = keys();
    let bytes = write(&k, &[item(1, 10)], &[]);
    let other = generate_keypair();
    let mut r = &bytes[..];
    let header = Header::read(&mut r).unwrap();
    let e = BundleReader::open(r, &header, &other.0, LIMITS)
        .err()
        .expect("refused");
    assert!(matches!(e, BundleError::Authentication), "{e}");
}

#[test]
fn a_forged_sender_fails_authentication() {
    // Mallory writes a bundle claiming to be A: she lacks A's key.
    let k = keys();
    let mallory = generate_keypair();
    let header = Header {
        from: k.a.1,
        to: k.b.1,
        seq: 1,
    };
    let mut w = BundleWriter::new(Vec::new(), &header, &mallory.0).unwrap();
    w.item(&item(1, 10)).unwrap();
    let bytes = w.finish().unwrap();
    assert!(matches!(
        read(&k, &bytes, LIMITS),
        Err(BundleError::Authentication)
    ));
}

#[test]
fn every_flipped_byte_is_refused() {
    let k = keys();
    let bytes = write(&k, &[item(1, 300)], &[[5; 32]]);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(read(&k, &bad, LIMITS).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn every_truncation_is_refused() {
    let k = keys();
    let bytes = write(&k, &[item(1, 100_000)], &[]);
    for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let e = read(&k, &bytes[..cut], LIMITS).err();
        assert!(e.is_some(), "cut at {cut} accepted");
    }
    // Appending is refused too.
    let mut long = bytes.clone();
    long.push(0);
    assert!(read(&k, &long, LIMITS).is_err());
}

#[test]
fn header_errors_say_what_is_wrong() {
    assert!(matches!(
        Header::read(&mut &b"PK\x03\x04 a zip file"[..]),
        Err(BundleError::NotABundle)
    ));
    let k = keys();
    let mut bytes = write(&k, &[], &[]);
    bytes[8] = 9;
    assert!(matches!(
        Header::read(&mut &bytes[..]),
        Err(BundleError::Version(9))
    ));
    assert!(matches!(
        Header::read(&mut &bytes[..20]),
        Err(BundleError::Version(9))
    ));
    bytes[8] = VERSION;
    assert!(matches!(
        Header::read(&mut &bytes[..20]),
        Err(BundleError::Truncated)
    ));
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let k = keys();
    // 20 MB of zeros compresses to a few KB.
    let bytes = write(
        &k,
        &[item(1, 0), {
            let mut i = item(2, 0);
            i.message = vec![0; 20 << 20];
            i
        }],
        &[],
    );
    assert!(bytes.len() < 100_000, "{}", bytes.len());
    let small = Limits {
        max_plain: 1 << 20,
        max_record: 32 << 20,
    };
    let e = read(&k, &bytes, small).expect_err("refused");
    assert!(matches!(e, BundleError::TooLarge { .. }), "{e}");
}

#[test]
fn an_oversized_record_is_refused_before_it_is_read() {
    let k = keys();
    let bytes = write(&k, &[item(1, 2 << 20)], &[]);
    let small = Limits {
        max_plain: 64 << 20,
        max_record: 1 << 20,
    };
    let e = read(&k, &bytes, small).expect_err("refused");
    assert!(matches!(e, BundleError::RecordTooLarge { .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_items_round_trip(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..6),
        rcpts in proptest::collection::vec("[a-z]{1,8}@[a-z]{1,8}\\.example", 1..4),
        acks in proptest::collection::vec(any::<[u8; 32]>(), 0..5),
        age in any::<u64>(),
        hops in any::<u8>(),
    ) {
        let k = keys();
        let items: Vec<Item> = msgs.into_iter().enumerate().map(|(n, message)| Item {
            id: [n as u8; 32],
            mail_from: String::new(),
            rcpts: rcpts.clone(),
            age_ms: age,
            lifetime_ms: age / 2,
            hops,
            message,
        }).collect();
        let bytes = write(&k, &items, &acks);
        let (_, recs) = read(&k, &bytes, LIMITS).unwrap();
        let mut expect: Vec<Record> = items.into_iter().map(Record::Item).collect();
        if !acks.is_empty() {
            expect.push(Record::Acks(acks));
        }
        prop_assert_eq!(recs, expect);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let k = keys();
        let mut bytes = Header { from: k.a.1, to: k.b.1, seq: 0 }.encode().to_vec();
        bytes.extend_from_slice(&data);
        prop_assert!(read(&k, &bytes, LIMITS).is_err());
    }
}
