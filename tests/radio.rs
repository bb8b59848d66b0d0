//! The modem drivers against the simulated radios: detection and
//! configuration read-back, frames across the simulated channel with their
//! signal reports, and bad input — silence, garbage on the serial line, a
//! modem that refuses a setting, frames from another network, an unplug.
//! In paused time: the simulated air takes its real duration, instantly.

use std::time::Duration;

use cairn::carriers::lora::airtime::Region;
use cairn::carriers::lora::modem::{Modem, ModemError, Settings};
use cairn::carriers::lora::port::Port;
use cairn::carriers::lora::sim::ether::Conditions;
use cairn::carriers::lora::sim::{Model, Sim};
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
