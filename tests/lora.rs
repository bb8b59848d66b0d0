//! Two hubs whose radios are simulated modems on pseudo-terminals: each
//! hub opens its serial device as it would a USB modem. Mail crosses both
//! ways, at 10 % frame loss, and a transfer cut by unplugging a modem
//! resumes after it is plugged in again, with nothing doubled.

mod common;

use std::time::Duration;

use cairn::carriers::lora::modem::Model;
use cairn::carriers::lora::modem::Settings;
use cairn::carriers::lora::sim::Sim;
use cairn::carriers::lora::sim::ether::Conditions;
use cairn::domain::lora::Region;
use cairn::relay::radio::service::RadioState;
use common::radio::{radio_pair, wait_radio};
use common::relay::{Node, node_for, send};
use common::smtp::inbox;

/// `from` submits a plain message whose body is about `size` bytes of
/// base64 of random bytes: it compresses no better than armoured
/// ciphertext, so its transfer takes many frames.
async fn send_noise(node: &Node, from: &str, to: &str, size: usize) {
    use base64::Engine;
    use common::smtp::{Client, PASSWORD};
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let raw: Vec<u8> = (0..size * 3 / 4)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let body = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nMessage-ID: <noise@test>\r\nSubject: noise\r\n\r\n{}\r\n",
        lines.join("\r\n")
    );
    let addr = node.hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let (mut c, _) = Client::tls(addr, &node.hub).await;
    c.cmd("EHLO phone").await;
    assert!(c.login(from, PASSWORD).await.starts_with("235"));
    let r = c.mail(from, &[to], &body).await;
    assert!(r.starts_with("250"), "{r}");
}

async fn wait_inbox(n: &Node, user: &str, count: usize, within: Duration) {
    let t = tokio::time::Instant::now();
    loop {
        let have = inbox(&n.hub, user).await.len();
        if have >= count {
            assert_eq!(have, count, "{user} on {} has more than sent", n.hub.name);
            return;
        }
        if t.elapsed() > within {
            let status = n.hub.radio.as_ref().map(|r| r.status().borrow().clone());
            panic!(
                "{user} on {} has {have} of {count} messages after {within:?}; radio: {status:?}; outbox: {:?}",
                n.hub.name,
                n.hub.store.outbox().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn no_one_over_the_duty_cycle(sim: &Sim) {
    if let Err(e) = sim.ether().check_duty(Region::Eu868) {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_crosses_the_radio_both_ways_on_each_modem() {
    for model in [Model::Rnode, Model::Rylr] {
        let r = radio_pair(model, Conditions::default(), false).await;
        send(
            &r.a,
            "alice@camp-a.example",
            "bob@camp-b.example",
            "over the air",
        )
        .await;
        wait_inbox(&r.b, "bob@camp-b.example", 1, Duration::from_secs(180)).await;
        send(
            &r.b,
            "bob@camp-b.example",
            "alice@camp-a.example",
            "and back",
        )
        .await;
        wait_inbox(&r.a, "alice@camp-a.example", 1, Duration::from_secs(180)).await;
        // Custody ends with the acknowledgement: both outboxes empty.
        for n in [&r.a, &r.b] {
            let mut empty = false;
            for _ in 0..100 {
                if n.hub.store.outbox().await.unwrap().is_empty() {
                    empty = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(
                empty,
                "{model:?}: {} still holds {:?}",
                n.hub.name,
                n.hub.store.outbox().await.unwrap()
            );
        }
        let history = r.a.hub.store.sync_history(10).await.unwrap();
        assert!(
            history
                .iter()
                .any(|h| h.carrier.starts_with("lora") && h.error.is_none()),
            "{model:?}: {history:?}"
        );
        no_one_over_the_duty_cycle(&r.sim);
        let status = r.a.hub.radio.as_ref().unwrap().status().borrow().clone();
        assert!(
            status.air.frames_sent > 0 && status.used_ms > 0,
            "{status:?}"
        );
        assert!(status.air.last_rssi.is_some(), "{status:?}");
        radio_page_shows_it(&r.a).await;
    }
}

/// Issue 20, point 5: the receiving hub's radio page showed no frames and
/// "Last heard: nothing yet" all through a session; the counts came only
/// when it ended. They now follow each frame while the session runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiving_radio_page_follows_a_session_as_it_runs() {
    let r = radio_pair(Model::Rnode, Conditions::default(), false).await;
    let mut status = r.b.hub.radio.as_ref().unwrap().status();
    // Frames heard counted during the session, after its start.
    let followed = tokio::spawn(async move {
        let mut at_start = None;
        while status.changed().await.is_ok() {
            let s = status.borrow().clone();
            match (s.state, at_start) {
                (RadioState::Session, None) => at_start = Some(s.air.frames_heard),
                (RadioState::Session, Some(h0))
                    if s.air.frames_heard > h0 && s.air.last_rssi.is_some() =>
                {
                    return true;
                }
                _ => {}
            }
        }
        false
    });
    send(
        &r.a,
        "alice@camp-a.example",
        "bob@camp-b.example",
        "watched as it comes",
    )
    .await;
    wait_inbox(&r.b, "bob@camp-b.example", 1, Duration::from_secs(180)).await;
    let followed = tokio::time::timeout(Duration::from_secs(30), followed).await;
    assert!(
        matches!(followed, Ok(Ok(true))),
        "b's radio status never counted a frame while the session ran: {:?}",
        r.b.hub.radio.as_ref().unwrap().status().borrow().clone()
    );
}

/// The radio page after traffic: the modem, air time against the band's
/// budget, and the signal plot.
async fn radio_page_shows_it(n: &Node) {
    use common::web::{admin_session, request};
    let web = n.hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (jar, _) = admin_session(&n.hub).await;
    let page = request(web, "/admin/radio", &jar, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let b = &page.body;
    assert!(
        b.contains(r#"<td id="radio-state">listening</td>"#)
            || b.contains(r#"<td id="radio-state">in a session</td>"#),
        "{b}"
    );
    assert!(b.contains("eu868-g3") && b.contains("10 %, 500 mW"), "{b}");
    assert!(b.contains("<meter"), "{b}");
    // The device picker: the field offers what is plugged in (here a
    // machine's /dev: usually nothing, said so).
    assert!(b.contains(r#"list="serial-devices""#), "{b}");
    assert!(
        b.contains(r#"id="devices-none""#) || b.contains(r#"<ul id="devices">"#),
        "{b}"
    );
    assert!(
        b.contains(r#"<svg id="signal-plot""#) && b.contains(r#"class="rssi""#),
        "{b}"
    );
    // The live part: status events with the frames and the band's air
    // time; a second one follows without the page asking again.
    let ev = common::web::first_events(web, "/admin/radio/events", &jar, 2).await;
    let live: serde_json::Value = serde_json::from_str(&ev[1].1).unwrap();
    assert_eq!(ev[1].0, "status");
    assert!(
        live["frames"].as_str().unwrap().contains(" sent, "),
        "{live}"
    );
    assert!(!live["heard"].as_str().unwrap().is_empty(), "{live}");
    assert_eq!(live["bands"][0]["name"], "eu868-g3", "{live}");
    assert!(live["bands"][0]["percent"].as_u64().is_some(), "{live}");
    // Without a login: no page, no events.
    let anon = request(web, "/admin/radio", "", None).await;
    assert_ne!(anon.status, 200);
    let anon = request(web, "/admin/radio/events", "", None).await;
    assert_ne!(anon.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_crosses_at_ten_percent_frame_loss() {
    let r = radio_pair(
        Model::Rnode,
        Conditions {
            loss: 0.1,
            corrupt: 0.01,
            ..Conditions::default()
        },
        false,
    )
    .await;
    for i in 0..3 {
        send(
            &r.a,
            "alice@camp-a.example",
            "bob@camp-b.example",
            &format!("a{i}"),
        )
        .await;
        send(
            &r.b,
            "bob@camp-b.example",
            "alice@camp-a.example",
            &format!("b{i}"),
        )
        .await;
    }
    wait_inbox(&r.b, "bob@camp-b.example", 3, Duration::from_secs(240)).await;
    wait_inbox(&r.a, "alice@camp-a.example", 3, Duration::from_secs(240)).await;
    assert!(
        r.sim.ether().stats().lost > 0,
        "{:?}",
        r.sim.ether().stats()
    );
    no_one_over_the_duty_cycle(&r.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_modem_resumes_the_transfer_without_duplicates() {
    let r = radio_pair(Model::Rnode, Conditions::default(), true).await;
    const SIZE: usize = 24_000;
    send_noise(&r.a, "alice@camp-a.example", "bob@camp-b.example", SIZE).await;
    // Wait until part of it has crossed, then pull A's modem.
    let b_radio = r.b.hub.radio.clone().unwrap();
    let mut status = b_radio.status();
    tokio::time::timeout(
        Duration::from_secs(60),
        status.wait_for(|s| s.progress.bytes_in > 6_000),
    )
    .await
    .expect("the transfer started")
    .unwrap();
    r.sim.unplug("a");
    wait_radio(&r.a, RadioState::Failed).await;
    let a_status = r.a.hub.radio.as_ref().unwrap().status().borrow().clone();
    assert!(
        a_status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("gone") || e.contains("open")),
        "{a_status:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.sim.plug("a").unwrap();
    wait_radio(&r.a, RadioState::Ready).await;
    // The next sync continues from B's partial copy.
    common::relay::sync_now(&r.a, Some("camp-b")).await;
    wait_inbox(&r.b, "bob@camp-b.example", 1, Duration::from_secs(240)).await;
    let runs = r.b.hub.store.sync_history(10).await.unwrap();
    let moved: i64 = runs.iter().map(|h| h.bytes_in).sum();
    let last = runs
        .iter()
        .find(|h| h.error.is_none() && h.items_in == 1)
        .expect("a run that took it");
    assert!(
        (last.bytes_in as usize) < SIZE,
        "the finishing run moved {} bytes: it started over instead of resuming ({runs:?})",
        last.bytes_in
    );
    assert!(moved as usize >= SIZE, "{runs:?}");
    no_one_over_the_duty_cycle(&r.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_radio_simulator_command_serves_modems_a_driver_can_open() {
    use cairn::carriers::lora::modem::{Modem, ModemError};
    use cairn::carriers::lora::port::Port;
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "radio", "sim", "--modem", "rylr", "--radios", "x,y", "--dir",
        ])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        lines.push(l);
    }
    assert!(
        lines[0].contains("radio x:") && lines[2].contains("radio.port"),
        "{lines:?}"
    );
    let x = dir.path().join("x").display().to_string();
    let y = dir.path().join("y").display().to_string();
    let settings = |address| Settings {
        model: Model::Rylr,
        address,
        ..Settings::default()
    };
    let mut mx = Modem::open(Port::open_serial(&x).unwrap(), &settings(1))
        .await
        .unwrap();
    let mut my = Modem::open(Port::open_serial(&y).unwrap(), &settings(2))
        .await
        .unwrap();
    assert!(
        mx.status().identity.contains("RYLR998"),
        "{:?}",
        mx.status()
    );
    mx.send(&[b"through the simulator".to_vec()]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), my.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.data, b"through the simulator");
    // Unplugging on its command line closes the hub's port.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "unplug x").unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), mx.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ModemError::Gone(_)), "{err}");
    // A wrong device is a clear error, not a hang.
    let err = Port::open_serial(&dir.path().join("none").display().to_string()).unwrap_err();
    assert!(err.to_string().contains("cannot open"), "{err}");
    // Stopped (SIGTERM, as systemd or a shell's kill would), it takes its
    // device links with it: none is left dangling.
    let pid = child.id().to_string();
    let o = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    for name in ["x", "y"] {
        assert!(
            std::fs::symlink_metadata(dir.path().join(name)).is_err(),
            "{name} is left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_that_never_answers_is_a_clear_error_on_the_page() {
    use common::web::{admin_session, enc, request};
    // A serial device where nothing answers: a pseudo-terminal nobody
    // serves.
    let (_master, slave) = serialport::TTYPort::pair().unwrap();
    let path = serialport::SerialPort::name(&slave).unwrap();
    drop(slave);
    let p = path.clone();
    let n = node_for("camp-a", "camp-a.example", move |c| {
        c.radio.port = p;
    })
    .await;
    wait_radio(&n, RadioState::Failed).await;
    let web = n.hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (jar, csrf) = admin_session(&n.hub).await;
    let page = request(web, "/admin/radio", &jar, None).await;
    assert!(
        page.body
            .contains(r#"<td class="error" id="radio-error">no RNode answered"#),
        "{}",
        page.body
    );
    // The page's live part says the same.
    let ev = common::web::first_events(web, "/admin/radio/events", &jar, 1).await;
    assert_eq!(ev[0].0, "status");
    let live: serde_json::Value = serde_json::from_str(&ev[0].1).unwrap();
    assert_eq!(live["state"], "failed", "{live}");
    assert!(
        live["error"]
            .as_str()
            .unwrap()
            .contains("no RNode answered"),
        "{live}"
    );
    assert!(
        page.body.contains(&format!("no RNode answered on {path}"))
            && page.body.contains("RNode firmware"),
        "{}",
        page.body
    );
    // A setting the modem cannot take is refused with the reason, and
    // nothing changes.
    let form = |sf: &str, modem: &str| {
        format!(
            "csrf={}&port={}&modem={modem}&region=eu868&frequency=869525000&bandwidth=125000&sf={sf}&cr=1&txpower=14&network=18&address=0&max_item=64+KiB",
            enc(&csrf),
            enc(&path)
        )
    };
    let r = request(
        web,
        "/admin/radio/settings",
        &jar,
        Some(&form("12", "rylr")),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("SF11"), "{}", r.body);
    let r = request(
        web,
        "/admin/radio/settings",
        &jar,
        Some(&form("13", "rnode")),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Said at the field in the form's words, the typed value kept.
    assert!(
        r.body.contains("Spreading factor: 13 is out of range")
            && r.body.contains(r#"id="sf" name="sf" value="13""#)
            && r.body
                .contains(r#"aria-invalid="true" aria-describedby="sf-error""#),
        "{}",
        r.body
    );
    assert!(
        n.hub
            .store
            .settings_with_prefix("config.radio.")
            .await
            .unwrap()
            .is_empty()
    );
    // A good change is stored and the hub restarts to apply it.
    let r = request(
        web,
        "/admin/radio/settings",
        &jar,
        Some(&form("10", "rnode")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("restarts"), "{}", r.body);
    let stored = n
        .hub
        .store
        .settings_with_prefix("config.radio.")
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .any(|(k, v)| k == "config.radio.sf" && v == "10"),
        "{stored:?}"
    );
    // A page left open does not hold the hub up: when it stops, the event
    // stream ends properly (the last chunk of a chunked response) instead
    // of being cut when the drain time runs out.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sse = tokio::net::TcpStream::connect(web).await.unwrap();
    sse.write_all(
        format!("GET /admin/radio/events HTTP/1.1\r\nHost: hub\r\nCookie: {jar}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("event: status") {
        let r = tokio::time::timeout(Duration::from_secs(30), sse.read(&mut chunk))
            .await
            .expect("a first status event")
            .unwrap();
        assert!(r > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..r]);
    }
    let stopping = tokio::spawn(n.hub.shutdown());
    loop {
        let r = tokio::time::timeout(Duration::from_secs(60), sse.read(&mut chunk))
            .await
            .expect("the stream ends when the hub stops")
            .unwrap_or(0);
        if r == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..r]);
    }
    stopping.await.unwrap();
    assert!(
        got.ends_with(b"0\r\n\r\n"),
        "the event stream was cut, not ended: {}",
        String::from_utf8_lossy(&got)
    );
}
