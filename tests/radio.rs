//! The modem drivers against the simulated radios: detection and
//! configuration read-back, frames across the simulated channel with their
//! signal reports, and bad input — silence, garbage on the serial line, a
//! modem that refuses a setting, frames from another network, an unplug.
//! In paused time: the simulated air takes its real duration, instantly.

use std::time::Duration;

use cairn::carriers::lora::modem::Model;
use cairn::carriers::lora::modem::{Modem, ModemError, Settings};
use cairn::carriers::lora::port::Port;
use cairn::carriers::lora::sim::Sim;
use cairn::carriers::lora::sim::ether::Conditions;
use cairn::domain::lora::Region;
use tokio::time::{Instant, timeout};

fn settings(model: Model) -> Settings {
    Settings {
        model,
        ..Settings::default()
    }
}

async fn pair(model: Model, conditions: Conditions) -> (std::sync::Arc<Sim>, Modem, Modem) {
    let sim = Sim::new(7, conditions);
    sim.add("a", model);
    sim.add("b", model);
    let a = Modem::open(sim.open("a").unwrap(), &settings(model))
        .await
        .unwrap();
    let mut sb = settings(model);
    sb.address = 2;
    let b = Modem::open(sim.open("b").unwrap(), &sb).await.unwrap();
    (sim, a, b)
}

async fn frames_cross(model: Model) {
    let (sim, mut a, mut b) = pair(model, Conditions::default()).await;
    assert!(!a.status().identity.is_empty());
    let mtu = a.mtu();
    let frames: Vec<Vec<u8>> = (0..4u8)
        .map(|i| (0..mtu).map(|j| (j as u8).wrapping_mul(7) ^ i).collect())
        .collect();
    let started = Instant::now();
    a.send(&frames).await.unwrap();
    for f in &frames {
        let got = timeout(Duration::from_secs(30), b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got.data, f);
        assert!((-100..=-80).contains(&got.rssi), "rssi {}", got.rssi);
        assert!((5.0..=10.0).contains(&got.snr), "snr {}", got.snr);
    }
    // The frames took at least their air time to cross.
    let air: Duration = frames
        .iter()
        .map(|f| a.settings().airtime(f.len()).as_duration())
        .sum();
    assert!(
        started.elapsed() >= air,
        "{:?} < {air:?}",
        started.elapsed()
    );
    // Both directions.
    b.send(&[b"back".to_vec()]).await.unwrap();
    let got = timeout(Duration::from_secs(30), a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.data, b"back");
    let stats = sim.ether().stats();
    assert_eq!(stats.lost + stats.collided, 0, "{stats:?}");
    sim.ether().check_duty(Region::Eu868).unwrap();
}

#[tokio::test(start_paused = true)]
async fn rnode_frames_cross_the_simulated_channel() {
    frames_cross(Model::Rnode).await;
}

#[tokio::test(start_paused = true)]
async fn rylr_frames_cross_the_simulated_channel() {
    frames_cross(Model::Rylr).await;
}

/// A burst larger than the RNode's queue (6 KB on an ESP32): the firmware
/// drops what does not fit without a word, so the driver asks READY before
/// each frame and waits for room. Every frame arrives, in order.
#[tokio::test(start_paused = true)]
async fn an_rnode_burst_larger_than_its_queue_waits_for_room() {
    let (_sim, mut a, mut b) = pair(Model::Rnode, Conditions::default()).await;
    let mtu = a.mtu();
    let frames: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; mtu]).collect();
    assert!(frames.len() * mtu > 6144);
    let (sent, got) = tokio::join!(a.send(&frames), async {
        let mut got = Vec::new();
        while got.len() < frames.len() {
            match timeout(Duration::from_secs(120), b.recv()).await {
                Ok(r) => got.push(r.unwrap().data),
                Err(_) => break,
            }
        }
        got
    });
    sent.unwrap();
    assert_eq!(got.len(), frames.len(), "frames were dropped by the modem");
    assert_eq!(got, frames);
    assert!(a.status().queue_waits > 0, "{:?}", a.status());
}

#[tokio::test(start_paused = true)]
async fn a_silent_port_is_a_clear_error() {
    for model in [Model::Rnode, Model::Rylr] {
        let (host, _modem_end) = Port::pair("/dev/ttyUSB9", "nothing");
        let err = match Modem::open(host, &settings(model)).await {
            Err(e) => e,
            Ok(_) => panic!("{model:?} opened on a silent port"),
        };
        assert!(matches!(err, ModemError::NoAnswer { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("/dev/ttyUSB9") && text.contains("check"),
            "{text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn garbage_on_the_serial_line_is_survived() {
    // Line noise before and between the modem's answers.
    let (host, mut modem_end) = Port::pair("noisy", "modem");
    let sim = Sim::new(3, Conditions::default());
    sim.add("real", Model::Rnode);
    let mut real = sim.open("real").unwrap();
    // A relay that sprinkles garbage into what the modem says.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                b = real.rx.recv() => {
                    let Some(b) = b else { return };
                    let mut noisy = vec![0x13, 0xDB, 0x99, 0xC0, 0x42, 0xDB];
                    noisy.extend(b);
                    if modem_end.tx.send(noisy).await.is_err() { return }
                }
                b = modem_end.rx.recv() => {
                    let Some(b) = b else { return };
                    if real.tx.send(b).await.is_err() { return }
                }
            }
        }
    });
    let m = Modem::open(host, &settings(Model::Rnode)).await.unwrap();
    assert!(
        m.status().identity.contains("1.86"),
        "{}",
        m.status().identity
    );
}

#[tokio::test(start_paused = true)]
async fn a_setting_the_modem_refuses_is_named() {
    // An RYLR998 refuses SF12; the error names the setting and the answer.
    let sim = Sim::new(1, Conditions::default());
    sim.add("a", Model::Rylr);
    let mut s = settings(Model::Rylr);
    s.sf = 12;
    assert!(
        s.problems().iter().any(|p| p.starts_with("sf:")),
        "{:?}",
        s.problems()
    );
    let err = match Modem::open(sim.open("a").unwrap(), &s).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("SF12 accepted"),
    };
    assert!(err.contains("PARAMETER") && err.contains("+ERR="), "{err}");
}

#[tokio::test(start_paused = true)]
async fn frames_from_another_network_are_unheard() {
    let sim = Sim::new(5, Conditions::default());
    sim.add("a", Model::Rylr);
    sim.add("b", Model::Rylr);
    let mut sa = settings(Model::Rylr);
    sa.network = 5;
    let mut a = Modem::open(sim.open("a").unwrap(), &sa).await.unwrap();
    let mut b = Modem::open(sim.open("b").unwrap(), &settings(Model::Rylr))
        .await
        .unwrap();
    a.send(&[b"other network".to_vec()]).await.unwrap();
    assert!(timeout(Duration::from_secs(20), b.recv()).await.is_err());
    // A different frequency is unheard too (RNode).
    let sim = Sim::new(6, Conditions::default());
    sim.add("a", Model::Rnode);
    sim.add("b", Model::Rnode);
    let mut sa = settings(Model::Rnode);
    sa.frequency = 868_100_000;
    let mut a = Modem::open(sim.open("a").unwrap(), &sa).await.unwrap();
    let mut b = Modem::open(sim.open("b").unwrap(), &settings(Model::Rnode))
        .await
        .unwrap();
    a.send(&[b"other channel".to_vec()]).await.unwrap();
    assert!(timeout(Duration::from_secs(20), b.recv()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn an_unplug_closes_the_port_and_a_replug_works_again() {
    let (sim, mut a, _b) = pair(Model::Rnode, Conditions::default()).await;
    sim.unplug("a");
    let err = timeout(Duration::from_secs(5), a.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ModemError::Gone(_)), "{err}");
    assert!(sim.open("a").unwrap_err().to_string().contains("unplugged"));
    sim.plug("a").unwrap();
    let mut a = Modem::open(sim.open("a").unwrap(), &settings(Model::Rnode))
        .await
        .unwrap();
    a.send(&[b"again".to_vec()]).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn loss_collisions_and_half_duplex_are_modelled() {
    // At 30 % loss roughly that share of frames goes missing.
    let (_sim, mut a, mut b) = pair(
        Model::Rnode,
        Conditions {
            loss: 0.3,
            ..Conditions::default()
        },
    )
    .await;
    let frames: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 50]).collect();
    for chunk in frames.chunks(10) {
        a.send(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut got = 0;
    while timeout(Duration::from_secs(10), b.recv()).await.is_ok() {
        got += 1;
    }
    assert!(
        (50..=90).contains(&got),
        "{got} of 100 arrived at 30 % loss"
    );
    // RYLR modules have no carrier sense: two sending at once collide,
    // and neither hears the other while it transmits.
    let (sim, mut a, mut b) = pair(Model::Rylr, Conditions::default()).await;
    let (fa, fb) = ([vec![1; 100]], [vec![2; 100]]);
    let (ra, rb) = tokio::join!(a.send(&fa), b.send(&fb));
    ra.unwrap();
    rb.unwrap();
    let stats = sim.ether().stats();
    assert_eq!((stats.sent, stats.delivered), (2, 0), "{stats:?}");
    assert_eq!(stats.collided, 2, "{stats:?}");
    assert!(timeout(Duration::from_secs(5), a.recv()).await.is_err());
}

// ---- the session layer over the simulated radio ----------------------

use cairn::domain::units::Airtime;
use cairn::relay::bundle::generate_keypair;
use cairn::relay::radio::frame::{Frame, Hello};
use cairn::relay::radio::session::{self, Air, Outcome, Tuning};
use cairn::relay::radio::{self as radio, RadioIo};
use tokio::sync::mpsc;

/// Two radios that have shaken hands: (A's io, B's io, A's keys, B's keys).
async fn handshake(
    sim: &std::sync::Arc<Sim>,
    model: Model,
) -> (
    RadioIo,
    RadioIo,
    snow::StatelessTransportState,
    snow::StatelessTransportState,
    [u8; 32],
) {
    let (a_priv, _a_pub) = generate_keypair();
    let (b_priv, b_pub) = generate_keypair();
    let mut a = RadioIo::new(
        Box::new(
            Modem::open(sim.open("a").unwrap(), &settings(model))
                .await
                .unwrap(),
        ),
        None,
    )
    .await
    .unwrap();
    let mut sb = settings(model);
    sb.address = 2;
    let mut b = RadioIo::new(
        Box::new(Modem::open(sim.open("b").unwrap(), &sb).await.unwrap()),
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
    for attempt in 0..10 {
        let (hs, first) = radio::hello(&a_priv, &b_pub, 0x4242 + attempt, &h).unwrap();
        a.send(vec![first]).await.unwrap();
        let Ok(Ok(got)) = timeout(Duration::from_secs(10), b.recv()).await else {
            continue;
        };
        let f = Frame::decode(&got.data).unwrap();
        let (_key, _theirs, rhs) = radio::hello_sender(&b_priv, &f).expect("a hello for b");
        let (b_keys, reply) = radio::answer(rhs, f.session, &h).unwrap();
        b.send(vec![reply]).await.unwrap();
        let Ok(Ok(got)) = timeout(Duration::from_secs(10), a.recv()).await else {
            continue;
        };
        let (a_keys, _) = radio::finish(hs, &Frame::decode(&got.data).unwrap()).unwrap();
        return (a, b, a_keys, b_keys, a_priv);
    }
    panic!("no handshake in ten tries");
}

/// `n` records of `size` random (incompressible, like ciphertext) bytes,
/// each starting with its number.
fn records(n: usize, size: usize, tag: u8) -> Vec<Vec<u8>> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(tag);
    (0..n)
        .map(|i| {
            let mut r: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            r[..8].copy_from_slice(&(i as u64).to_be_bytes());
            r
        })
        .collect()
}

/// Runs a session both ways; returns what each side received and the
/// outcomes.
#[allow(clippy::type_complexity)]
async fn stream_both_ways(
    model: Model,
    conditions: Conditions,
    a_out: Vec<Vec<u8>>,
    b_out: Vec<Vec<u8>>,
) -> (
    Vec<Vec<u8>>,
    Vec<Vec<u8>>,
    Outcome,
    Outcome,
    std::sync::Arc<Sim>,
) {
    let sim = Sim::new(11, Conditions::default());
    sim.add("a", model);
    sim.add("b", model);
    let (mut a, mut b, ka, kb, _) = handshake(&sim, model).await;
    sim.ether().set(conditions);
    let tuning = Tuning::default();
    let feed = |recs: Vec<Vec<u8>>| {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for r in recs {
                if tx.send(r).await.is_err() {
                    return;
                }
            }
        });
        rx
    };
    let (a_in_tx, mut a_in) = mpsc::channel(1024);
    let (b_in_tx, mut b_in) = mpsc::channel(1024);
    let never = |_: &Frame| false;
    let (ra, rb) = tokio::join!(
        session::run(
            &mut a,
            &ka,
            0x4242,
            true,
            feed(a_out),
            a_in_tx,
            &tuning,
            1,
            &never
        ),
        session::run(
            &mut b,
            &kb,
            0x4242,
            false,
            feed(b_out),
            b_in_tx,
            &tuning,
            2,
            &never
        ),
    );
    let (oa, ob) = match (ra, rb) {
        (Ok(a), Ok(b)) => (a, b),
        (ra, rb) => panic!("A: {ra:?}\nB: {rb:?}\n{:?}", sim.ether().stats()),
    };
    let mut got_a = Vec::new();
    while let Ok(r) = a_in.try_recv() {
        got_a.push(r);
    }
    let mut got_b = Vec::new();
    while let Ok(r) = b_in.try_recv() {
        got_b.push(r);
    }
    (got_a, got_b, oa, ob, sim)
}

#[tokio::test(start_paused = true)]
async fn a_session_streams_records_both_ways_without_loss() {
    for model in [Model::Rnode, Model::Rylr] {
        let a_out = records(40, 700, 0xAA);
        let b_out = records(5, 300, 0xBB);
        let (at_a, at_b, oa, ob, sim) =
            stream_both_ways(model, Conditions::default(), a_out.clone(), b_out.clone()).await;
        assert_eq!(at_b, a_out, "{model:?}: B got A's records in order, once");
        assert_eq!(at_a, b_out, "{model:?}: A got B's records in order, once");
        assert_eq!(
            oa.resent + ob.resent,
            0,
            "{model:?}: nothing resent on a clean channel"
        );
        sim.ether().check_duty(Region::Eu868).unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_survives_ten_and_thirty_percent_loss() {
    for loss in [0.1, 0.3] {
        let a_out = records(30, 1000, 0xAA);
        let b_out = records(10, 500, 0xBB);
        let cond = Conditions {
            loss,
            corrupt: 0.02,
            ..Conditions::default()
        };
        let (at_a, at_b, oa, _ob, sim) =
            stream_both_ways(Model::Rnode, cond, a_out.clone(), b_out.clone()).await;
        assert_eq!(at_b, a_out, "at {loss}: in order, once, none missing");
        assert_eq!(at_a, b_out);
        assert!(oa.resent > 0, "at {loss} something had to be resent");
        let stats = sim.ether().stats();
        assert!(stats.corrupted > 0 || loss < 0.2, "{stats:?}");
        sim.ether().check_duty(Region::Eu868).unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_hour_of_traffic_stays_inside_the_duty_cycle() {
    // A sends far more than an hour's budget allows at SF9; the session
    // keeps going, waiting for air time, and the oracle finds no hour over
    // the legal 10 %.
    let sim = Sim::new(21, Conditions::default());
    sim.add("a", Model::Rnode);
    sim.add("b", Model::Rnode);
    let (mut a, mut b, ka, kb, _) = handshake(&sim, Model::Rnode).await;
    let tuning = Tuning::default();
    let (a_tx, a_rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for r in records(2000, 1000, 0x11) {
            if a_tx.send(r).await.is_err() {
                return;
            }
        }
    });
    let (_b_tx, b_rx) = mpsc::channel::<Vec<u8>>(4);
    let (a_in_tx, _a_in) = mpsc::channel(1024);
    let (b_in_tx, mut b_in) = mpsc::channel(100_000);
    let never = |_: &Frame| false;
    let run = async {
        tokio::join!(
            session::run(&mut a, &ka, 0x4242, true, a_rx, a_in_tx, &tuning, 1, &never),
            session::run(
                &mut b, &kb, 0x4242, false, b_rx, b_in_tx, &tuning, 2, &never
            ),
        )
    };
    // Ninety simulated minutes, then stop.
    if let Ok((ra, rb)) = timeout(Duration::from_secs(90 * 60), run).await {
        panic!("the session ended early: {ra:?} {rb:?}");
    }
    let mut got = 0usize;
    while b_in.try_recv().is_ok() {
        got += 1;
    }
    let worst = sim.ether().check_duty(Region::Eu868).unwrap();
    let (_, _, a_air) = worst.iter().find(|(n, _, _)| n == "a").unwrap().clone();
    // A used most of its budget (the ledger allows 95 % of 360 s) …
    assert!(a_air > Airtime(300_000_000), "A used only {a_air}");
    // … and moved what that budget carries at SF9 (≈ 180 B/s of air).
    // 90 minutes at 95 % of 10 % is 513 s of air; at SF9 a full frame
    // carries 232 B in 1.29 s: at most ≈ 92 kB, less polls and turns.
    assert!(
        got >= 60,
        "only {got} records of 1000 B crossed in 90 minutes"
    );
    // The ledger is close to its limit: the sender was held back by it.
    let (used, limit) = a.ledger_use();
    assert!(used.0 * 10 >= limit.0 * 8, "ledger {used} of {limit}");
}

#[tokio::test]
async fn the_ledger_survives_a_restart() {
    // Air time spent before a restart still counts after it: the ledger
    // is in the database, written before each frame goes out.
    let dir = tempfile::tempdir().unwrap();
    let store = cairn::store::Store::open(dir.path()).await.unwrap();
    let sim = Sim::new(4, Conditions::default());
    sim.add("a", Model::Rylr);
    let s = settings(Model::Rylr);
    let mut io = RadioIo::new(
        Box::new(Modem::open(sim.open("a").unwrap(), &s).await.unwrap()),
        Some(store.clone()),
    )
    .await
    .unwrap();
    let full = io.airtime(io.mtu());
    io.send(vec![vec![7u8; 180]; 3]).await.unwrap();
    let (used, limit) = io.ledger_use();
    assert_eq!(used, Airtime(full.0 * 3));
    drop(io);
    drop(store);
    // "Restart": a new store handle, a new modem, a new ledger.
    let store = cairn::store::Store::open(dir.path()).await.unwrap();
    let mut io = RadioIo::new(
        Box::new(Modem::open(sim.open("a").unwrap(), &s).await.unwrap()),
        Some(store),
    )
    .await
    .unwrap();
    let (again, limit_again) = io.ledger_use();
    assert_eq!((again, limit_again), (used, limit));
    assert!(io.budget_ms() < (limit.0 / 1000) as u32);
}

/// The committed fuzz seeds are valid inputs (so the fuzzers start from
/// real traffic): an RNode's detect answer and a data frame, an RYLR's
/// replies, a radio frame.
#[test]
fn the_radio_fuzz_seeds_are_valid_inputs() {
    use cairn::carriers::lora::at::{Command, LineReader, Reply};
    use cairn::carriers::lora::kiss::Deframer;
    let seed = |t: &str| {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fuzz/corpus/{t}/seed")),
        )
        .unwrap()
    };
    let k = seed("kiss_deframer");
    let frames = Deframer::new().feed(&k[1..]);
    assert_eq!(frames.len(), 5, "{frames:?}");
    assert_eq!(frames[4].data, vec![0x41, 0xC0, 0x42, 0xDB]);
    let a = seed("at_lines");
    let lines = LineReader::new().feed(&a[1..]);
    assert_eq!(lines.len(), 5);
    assert!(matches!(Reply::parse(&lines[1]), Ok(Reply::Rcv { .. })));
    assert!(matches!(
        Command::parse(&lines[2]),
        Ok(Command::Send { .. })
    ));
    assert!(Frame::decode(&seed("radio_frame")).is_some());
}
