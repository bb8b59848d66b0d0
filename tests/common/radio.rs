//! Two hubs whose radios are simulated modems on pseudo-terminals.
#![allow(dead_code)]

use super::relay::{Node, node_for};
use cairn::carriers::lora::modem::Model;
use cairn::carriers::lora::modem::Settings;
use cairn::carriers::lora::sim::Sim;
use cairn::carriers::lora::sim::ether::Conditions;
use cairn::relay::radio::service::RadioState;
use std::sync::Arc;
use std::time::Duration;

/// Fast settings for tests: SF7 at 250 kHz fills the EU 10 % sub-band.
pub fn fast(model: Model, address: u16) -> Settings {
    Settings {
        model,
        bandwidth: 250_000,
        sf: 7,
        address,
        ..Settings::default()
    }
}

pub struct Radios {
    pub sim: Arc<Sim>,
    pub _dir: tempfile::TempDir,
    pub a: Node,
    pub b: Node,
}

/// camp-a and camp-b, peers of each other with `always` radio uplinks,
/// each radio open and listening. `plain`: the encryption rule off.
pub async fn radio_pair(model: Model, conditions: Conditions, plain: bool) -> Radios {
    let sim = Sim::new(17, conditions);
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        sim.add(name, model);
        sim.open_pty(name, &dir.path().join(format!("radio-{name}")))
            .unwrap();
    }
    let port = |n: &str| dir.path().join(format!("radio-{n}")).display().to_string();
    let (pa, pb) = (port("a"), port("b"));
    let a = node_for("camp-a", "camp-a.example", |c| {
        c.radio.port = pa;
        c.radio.settings = fast(model, 1);
        c.mail.require_encryption = !plain;
    })
    .await;
    let b = node_for("camp-b", "camp-b.example", |c| {
        c.radio.port = pb;
        c.radio.settings = fast(model, 2);
        c.mail.require_encryption = !plain;
    })
    .await;
    a.add(&b).await;
    b.add(&a).await;
    a.hub
        .syncer
        .add("camp-b", "lora", "", "always", false)
        .await
        .unwrap();
    b.hub
        .syncer
        .add("camp-a", "lora", "", "always", false)
        .await
        .unwrap();
    for n in [&a, &b] {
        wait_radio(n, RadioState::Ready).await;
    }
    Radios {
        sim,
        _dir: dir,
        a,
        b,
    }
}

pub async fn wait_radio(n: &Node, state: RadioState) {
    let radio = n.hub.radio.clone().expect("the hub has a radio");
    let mut status = radio.status();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| s.state == state),
    )
    .await;
    assert!(
        r.is_ok(),
        "{}'s radio never reached {state:?}: {:?}",
        n.hub.name,
        radio.status().borrow()
    );
}
