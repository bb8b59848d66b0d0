//! Hubs as store-and-forward nodes for tests: three in-process hubs, mail
//! submitted over SMTP, bundles carried through directories.
#![allow(dead_code)]

use super::smtp::{Client, PASSWORD, encrypted, hub, inbox};
use cairn::app::Hub;
use cairn::relay::{folder, node};
use std::path::{Path, PathBuf};

pub struct Node {
    _tmp: tempfile::TempDir,
    pub hub: Hub,
}

pub async fn node_for(
    name: &str,
    domain: &str,
    tweak: impl FnOnce(&mut cairn::config::Config),
) -> Node {
    let (tmp, hub) = hub(|c| {
        c.hub.name = name.into();
        c.hub.domains = vec![cairn::domain::Domain::parse(domain).unwrap()];
        tweak(c);
    })
    .await;
    Node { _tmp: tmp, hub }
}

impl Node {
    pub fn card(&self) -> node::Card {
        self.hub.relay.card(vec![])
    }
    pub async fn add(&self, other: &Node) {
        self.hub.relay.add_peer(&other.card(), None).await.unwrap();
    }
    /// The hub's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.hub.report.data_dir.clone()
    }
    pub fn key_path(&self) -> PathBuf {
        self.hub.report.data_dir.join("node.key")
    }
    /// Everything an import could change, to compare before and after.
    pub async fn snapshot(&self, users: &[&str]) -> String {
        let mut s = String::new();
        for u in users {
            s.push_str(&format!("{u}: {}\n", inbox(&self.hub, u).await.len()));
        }
        for o in self.hub.store.outbox().await.unwrap() {
            s.push_str(&format!(
                "{} {} {:?} {}\n",
                o.id, o.state, o.next_hop, o.rcpts
            ));
        }
        for p in self.hub.store.peer_list().await.unwrap() {
            s.push_str(&format!(
                "{} {:?} {:?}\n",
                p.name,
                p.last_received_at.is_some(),
                self.hub.store.acks_due(p.id).await.unwrap()
            ));
        }
        s
    }
}

/// alice@`domain` submits an encrypted message to `to`; returns its body.
pub async fn send(node: &Node, from: &str, to: &str, tag: &str) -> String {
    send_to(node, from, &[to], tag).await
}

/// `from` submits an encrypted message to every address of `to`.
pub async fn send_to(node: &Node, from: &str, to: &[&str], tag: &str) -> String {
    let addr = node.hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let (mut c, _) = Client::tls(addr, &node.hub).await;
    c.cmd("EHLO phone").await;
    let r = c.login(from, PASSWORD).await;
    assert!(r.starts_with("235"), "{r}");
    let body = encrypted(from).replacen(
        "Subject:",
        &format!("Message-ID: <{tag}@test>\r\nSubject:"),
        1,
    );
    let r = c.mail(from, to, &body).await;
    assert!(r.starts_with("250"), "{r}");
    body
}

/// Wait until the hub's router has given every outbox item a next hop.
pub async fn routed(node: &Node) {
    for _ in 0..100 {
        let items = node.hub.store.outbox().await.unwrap();
        if items.iter().all(|i| i.state != "no-route") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "outbox items were not routed: {:?}",
        node.hub.store.outbox().await.unwrap()
    );
}

/// The files in `dir` but hidden ones (the folder's `.cairn-folder` id).
pub fn bundles(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    v.sort();
    v
}

pub async fn carry(from: &Node, peer: &str, to: &Node, dir: &Path) -> cairn::relay::Imported {
    let (path, _) = folder::export(&from.hub.relay, peer, dir).await.unwrap();
    let r = folder::import(&to.hub.relay, dir, false).await.unwrap();
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    let (_, report) = r
        .imported
        .into_iter()
        .find(|(p, _)| *p == path)
        .expect("the new bundle was imported");
    report
}

/// A (camp-a.example) routes everything via G; G routes camp-b.example to
/// B and camp-a.example to A; B routes everything via G.
pub async fn three_nodes() -> (Node, Node, Node) {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let g = node_for("gw", "gw.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    a.add(&g).await;
    g.add(&a).await;
    g.add(&b).await;
    b.add(&g).await;
    a.hub.relay.add_route("*", "gw").await.unwrap();
    b.hub.relay.add_route("*", "gw").await.unwrap();
    (a, g, b)
}

/// A config file naming a hub and its domain, for CLI commands run beside
/// an in-process hub (which got the same settings in code).
pub fn config_file(dir: &Path, name: &str, domain: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("[hub]\nname = \"{name}\"\ndomains = [\"{domain}\"]\n"),
    )
    .unwrap();
    path
}

/// Run `cairn --config CFG --data DATA ARGS…` with `stdin`.
pub fn cli(cfg: &Path, node: &Node, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let dir = cfg.parent().unwrap();
    let mut c = super::cairn(dir);
    c.arg("--config")
        .arg(cfg)
        .arg("--data")
        .arg(&node.hub.report.data_dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("run cairn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn link_addr(n: &Node) -> std::net::SocketAddr {
    n.hub.endpoint(cairn::app::LINK).expect("a link listener")
}

/// A's card for B, and B's for A; B's card names its link address (on
/// IPv6 loopback), so A can dial it; A's names none, so B only answers.
pub async fn pair(tweak: fn(&mut cairn::config::Config)) -> (Node, Node) {
    let a = node_for("camp-a", "camp-a.example", tweak).await;
    let b = node_for("camp-b", "camp-b.example", |c| {
        c.listen.link = vec!["[::1]:0".parse().unwrap()];
        tweak(c);
    })
    .await;
    let b_card = b.hub.relay.card(vec![link_addr(&b).to_string()]);
    a.hub.relay.add_peer(&b_card, None).await.unwrap();
    b.add(&a).await;
    (a, b)
}

/// `from` submits a plain message of about `size` bytes (needs the
/// encryption rule off) with Message-ID `<tag@test>`.
pub async fn send_plain(node: &Node, from: &str, to: &str, tag: &str, size: usize) {
    let addr = node.hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let (mut c, _) = Client::tls(addr, &node.hub).await;
    c.cmd("EHLO phone").await;
    assert!(c.login(from, PASSWORD).await.starts_with("235"));
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-\r\n";
    let body = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nMessage-ID: <{tag}@test>\r\nSubject: {tag}\r\n\r\n{}",
        line.repeat(size / line.len() + 1)
    );
    let r = c.mail(from, &[to], &body).await;
    assert!(r.starts_with("250"), "{r}");
}

const LOCAL: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

/// A port free now, for a listener that must know its peer's port before
/// either starts. Taken below Linux's ephemeral range (32768 and up), so
/// the listeners other hubs open on port 0 meanwhile can never be given
/// it (they were, now and then, and the hub then failed to start).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1000 {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = 20_000 + (random % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

pub struct Camp {
    pub a: Node,
    pub g: Node,
    pub i: Node,
    /// The DNS every node asks; tests publish records into it.
    pub dns: super::dns::Zone,
}

/// A (camp-a.example) → G (gw.example, the gateway) → I (internet.example).
pub async fn campsite() -> Camp {
    let zone = vec![
        (
            "internet.example",
            super::dns::Entry::Mx("mx.internet.example"),
        ),
        ("mx.internet.example", super::dns::Entry::A(LOCAL)),
        ("camp-a.example", super::dns::Entry::Mx("mx.gw.example")),
        ("mx.gw.example", super::dns::Entry::A(LOCAL)),
        ("broken.example", super::dns::Entry::Broken),
        ("hostonly.example", super::dns::Entry::A(LOCAL)),
    ];
    let records = super::dns::Zone::new(zone);
    let dns = super::dns::serve_zone("127.0.0.1:0".parse().unwrap(), records.clone()).await;
    let g_mx = free_port();
    let i_mx = std::iter::repeat_with(free_port)
        .find(|p| *p != g_mx)
        .unwrap();
    let (a, g) = camp_and_gateway(dns, g_mx, i_mx).await;
    let i = node_for("internet", "internet.example", |c| {
        as_gateway(c, dns, i_mx, g_mx)
    })
    .await;
    make_gateway(&i).await;
    Camp {
        a,
        g,
        i,
        dns: records,
    }
}

/// MX port `own`, DNS at `dns`, the Internet's MX hosts on port `theirs`.
fn as_gateway(c: &mut cairn::config::Config, dns: std::net::SocketAddr, own: u16, theirs: u16) {
    // Its public name first (what it greets with, what MX records name),
    // then the address the tests' clients check its certificate for.
    c.hub.hostnames = vec![
        cairn::config::Hostname::Name(format!("mx.{}", c.hub.domains[0])),
        cairn::config::Hostname::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
    ];
    c.listen.smtp_mx = vec![std::net::SocketAddr::from((LOCAL, own))];
    c.gateway.dns = vec![dns];
    c.gateway.mx_port = theirs;
}

/// Camp hub A (camp-a.example) and its gateway G (gw.example, MX port
/// `g_mx`), which reaches the Internet's MX hosts on port `out` through
/// the DNS at `dns`. A dials G when someone presses Sync now; G's smtp
/// uplink is manual.
pub async fn camp_and_gateway(dns: std::net::SocketAddr, g_mx: u16, out: u16) -> (Node, Node) {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let g = node_for("gw", "gw.example", |c| as_gateway(c, dns, g_mx, out)).await;
    let g_card = g.hub.relay.card(vec![link_addr(&g).to_string()]);
    a.hub.relay.add_peer(&g_card, None).await.unwrap();
    a.hub.relay.add_route("*", "gw").await.unwrap();
    a.hub
        .syncer
        .add("gw", "link", "", "manual", false)
        .await
        .unwrap();
    g.add(&a).await;
    make_gateway(&g).await;
    (a, g)
}

pub async fn sync_now(n: &Node, peer: Option<&str>) {
    let round = n.hub.syncer.sync_now(peer).await.unwrap();
    let mut board = n.hub.syncer.board();
    board
        .wait_for(|b| b.round == round && !b.round_running)
        .await
        .unwrap();
}

/// Make `n` a gateway: the Internet peer with a manual smtp uplink.
pub async fn make_gateway(n: &Node) {
    n.hub.relay.add_internet_peer("internet").await.unwrap();
    n.hub
        .syncer
        .add("internet", "smtp", "", "manual", false)
        .await
        .unwrap();
}

/// Wait until `node` holds one queued outbox item (mail a client sends in
/// the background).
pub async fn wait_queued(node: &Node) {
    for _ in 0..600 {
        let out = node.hub.store.outbox().await.unwrap();
        if out.len() == 1 && out[0].state == "queued" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "no queued item on {}: {:?}",
        node.hub.name,
        node.hub.store.outbox().await.unwrap()
    );
}
