//! LoRa link efficiency over the simulated radio, in paused time (the air
//! takes its real duration, instantly): one hub streams records to another
//! through the radio session (handshake done), at 0, 10 and 30 % frame
//! loss, on each modem. Prints payload delivered against the air time of
//! every frame both ways (data, turns, polls) as a share of the PHY bit
//! rate, the goodput (random, incompressible payload), and — for real
//! Delta Chat encrypted messages (compressed per record for the air)
//! (`tests/bench/fixtures/deltachat-*.eml`) — bytes on the air against
//! their MIME size.
//!
//! Run: `cargo bench --bench lora_efficiency`.

use cairn::carriers::lora::modem::Model;
use cairn::carriers::lora::modem::{Modem, Settings};
use cairn::carriers::lora::sim::Sim;
use cairn::carriers::lora::sim::ether::Conditions;
use cairn::domain::units::Airtime;
use cairn::relay::bundle::generate_keypair;
use cairn::relay::radio::frame::{Frame, Hello};
use cairn::relay::radio::session::{self, Air, Tuning};
use cairn::relay::radio::{self as radio, RadioIo};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

fn settings(model: Model, sf: u8, address: u16) -> Settings {
    Settings {
        model,
        sf,
        address,
        ..Settings::default()
    }
}

async fn joined(
    model: Model,
    sf: u8,
    loss: f64,
) -> (
    Arc<Sim>,
    RadioIo,
    RadioIo,
    snow::StatelessTransportState,
    snow::StatelessTransportState,
) {
    let sim = Sim::new(99, Conditions::default());
    sim.add("a", model);
    sim.add("b", model);
    let (a_priv, _) = generate_keypair();
    let (b_priv, b_pub) = generate_keypair();
    let mut a = RadioIo::new(
        Box::new(
            Modem::open(sim.open("a").unwrap(), &settings(model, sf, 1))
                .await
                .unwrap(),
        ),
        None,
    )
    .await
    .unwrap();
    let mut b = RadioIo::new(
        Box::new(
            Modem::open(sim.open("b").unwrap(), &settings(model, sf, 2))
                .await
                .unwrap(),
        ),
        None,
    )
    .await
    .unwrap();
    let h = Hello {
        version: 1,
        mtu: a.mtu() as u16,
        budget_ms: 0,
        caps: 0,
    };
    let (hs, first) = radio::hello(&a_priv, &b_pub, 7, &h).unwrap();
    a.send(vec![first]).await.unwrap();
    let got = b.recv().await.unwrap();
    let f = Frame::decode(&got.data).unwrap();
    let (_, _, rhs) = radio::hello_sender(&b_priv, &f).unwrap();
    let (kb, reply) = radio::answer(rhs, 7, &h).unwrap();
    b.send(vec![reply]).await.unwrap();
    let got = a.recv().await.unwrap();
    let (ka, _) = radio::finish(hs, &Frame::decode(&got.data).unwrap()).unwrap();
    sim.ether().set(Conditions {
        loss,
        ..Conditions::default()
    });
    (sim, a, b, ka, kb)
}

struct Run {
    delivered: usize,
    airtime: Airtime,
    phy_bytes: usize,
    elapsed: Duration,
    bit_rate: f64,
}

/// Streams `records` from A to B; returns what crossed and what it cost.
async fn stream(model: Model, sf: u8, loss: f64, records: Vec<Vec<u8>>) -> Run {
    let (sim, mut a, mut b, ka, kb) = joined(model, sf, loss).await;
    let before = sim.ether().log().len();
    let want: usize = records.iter().map(Vec::len).sum();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for r in records {
            if tx.send(r).await.is_err() {
                return;
            }
        }
    });
    // B has nothing to send: its stream is closed from the start.
    let (btx, brx) = mpsc::channel::<Vec<u8>>(1);
    drop(btx);
    let (a_in, _a_rx) = mpsc::channel(16);
    let (b_in, mut b_rx) = mpsc::channel(100_000);
    let tuning = Tuning::default();
    let start = Instant::now();
    let (a_done, a_finished) = tokio::sync::watch::channel(false);
    let (b_done, b_finished) = tokio::sync::watch::channel(false);
    let both = async {
        tokio::join!(
            run_and_linger(&mut a, &ka, true, rx, a_in, &tuning, a_done, b_finished),
            run_and_linger(&mut b, &kb, false, brx, b_in, &tuning, b_done, a_finished),
        )
    };
    let (ra, rb) = timeout(Duration::from_secs(24 * 3600), both)
        .await
        .expect("a day is enough");
    let (oa, ob) = match (ra, rb) {
        (Ok(a), Ok(b)) => (a, b),
        (ra, rb) => panic!(
            "{model:?} SF{sf} loss {loss}:\nA: {ra:?}\nB: {rb:?}\n{:?}",
            sim.ether().stats()
        ),
    };
    if std::env::var("VERBOSE").is_ok() {
        eprintln!("A: {oa:?}\nB: {ob:?}");
    }
    let elapsed = start.elapsed();
    let mut delivered = 0;
    while let Ok(r) = b_rx.try_recv() {
        delivered += r.len();
    }
    assert_eq!(delivered, want, "everything crossed");
    let log = sim.ether().log();
    let frames = &log[before..];
    let s = settings(model, sf, 1);
    Run {
        delivered,
        airtime: frames.iter().map(|r| r.airtime).sum(),
        // The air packet: RNode's header byte, or RYLR's 8 bytes and base64.
        phy_bytes: frames.iter().map(|r| r.len).sum::<usize>(),
        elapsed,
        bit_rate: s.modulation().bit_rate(),
    }
}

/// One side's session, then — as the radio service does — its goodbye
/// repeated to late polls until the other side is done too.
#[allow(clippy::too_many_arguments)]
async fn run_and_linger(
    io: &mut RadioIo,
    keys: &snow::StatelessTransportState,
    initiator: bool,
    out: mpsc::Receiver<Vec<u8>>,
    inc: mpsc::Sender<Vec<u8>>,
    tuning: &Tuning,
    done: tokio::sync::watch::Sender<bool>,
    mut other: tokio::sync::watch::Receiver<bool>,
) -> Result<session::Outcome, session::SessionError> {
    let never = |_: &Frame| false;
    let r = session::run(
        io,
        keys,
        7,
        initiator,
        out,
        inc,
        tuning,
        u64::from(initiator) + 1,
        &never,
    )
    .await;
    let _ = done.send(true);
    if let Ok(Some(bye)) = r.as_ref().map(|o| o.bye.clone()) {
        loop {
            tokio::select! {
                heard = io.recv() => {
                    let turn = heard.is_ok_and(|h| {
                        Frame::decode(&h.data).is_some_and(|f| f.kind == cairn::relay::radio::frame::Kind::Turn)
                    });
                    if turn {
                        let _ = io.send(vec![bye.clone()]).await;
                    }
                }
                _ = other.wait_for(|d| *d) => break,
            }
        }
    }
    r
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    println!(
        "LoRa link efficiency (simulated radio, paused time); EU 869.525 MHz, 125 kHz, CR 4/5"
    );
    println!(
        "payload = record bytes delivered; efficiency = payload bits / (air time of all frames, both ways, x PHY bit rate)"
    );
    println!();
    println!(
        "{:<6} {:>3} {:>5} {:>10} {:>10} {:>11} {:>12}",
        "modem", "SF", "loss", "payload B", "air s", "efficiency", "goodput B/s"
    );
    rt.block_on(async {
        for model in [Model::Rnode, Model::Rylr] {
            for sf in [7u8, 9] {
                for loss in [0.0, 0.1, 0.3] {
                    // Incompressible (like ciphertext), so this measures
                    // the link, not the compression.
                    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
                    let records: Vec<Vec<u8>> = (0..30)
                        .map(|_| {
                            (0..1000)
                                .map(|_| {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                    x as u8
                                })
                                .collect()
                        })
                        .collect();
                    let r = stream(model, sf, loss, records).await;
                    let eff = (r.delivered * 8) as f64 / (r.airtime.0 as f64 / 1e6 * r.bit_rate);
                    println!(
                        "{:<6} {:>3} {:>4.0}% {:>10} {:>10.1} {:>10.1}% {:>12.1}",
                        format!("{model:?}").to_lowercase(),
                        sf,
                        loss * 100.0,
                        r.delivered,
                        r.airtime.0 as f64 / 1e6,
                        eff * 100.0,
                        r.delivered as f64 / r.elapsed.as_secs_f64()
                    );
                }
            }
        }
        println!();
        println!("Real Delta Chat encrypted messages (10 of each fixture), SF9, no loss: bytes on air vs MIME size");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bench/fixtures");
        let mut mails = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "eml") {
                mails.push(std::fs::read(&p).unwrap());
            }
        }
        mails.sort();
        for model in [Model::Rnode, Model::Rylr] {
            let records: Vec<Vec<u8>> = (0..10).flat_map(|_| mails.clone()).collect();
            let mime: usize = records.iter().map(Vec::len).sum();
            let r = stream(model, 9, 0.0, records).await;
            println!(
                "{:<6} MIME {} B, on air {} B ({:.0} % of MIME), air time {:.1} s for {} messages",
                format!("{model:?}").to_lowercase(),
                mime,
                r.phy_bytes,
                r.phy_bytes as f64 / mime as f64 * 100.0,
                r.airtime.0 as f64 / 1e6,
                10 * mails.len()
            );
        }
    });
}
