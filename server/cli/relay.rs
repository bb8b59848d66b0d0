//! `cairn node`, `cairn peer`, `cairn route`, `cairn uplink` and
//! `cairn sync`: this node, its peers and how mail reaches them.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum NodeCommand {
    /// Print this node's card: give it to the peers that should add this node.
    Card {
        /// Where peers may reach this node for live links (host:port); repeatable.
        #[arg(long = "addr", value_name = "HOST:PORT")]
        addrs: Vec<String>,
        /// Also print it as a QR code (for a phone camera or a printout).
        #[arg(long)]
        qr: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum PeerCommand {
    /// Add a peer from its node card (from `cairn node card` on that node);
    /// its domains are routed to it unless already routed elsewhere.
    Add {
        card: String,
        /// Call it this instead of the name on its card.
        #[arg(long)]
        name: Option<String>,
        /// When to sync over a live link if the card has addresses:
        /// always, manual, appear, or windows such as "mon-fri 08:00-18:00".
        #[arg(long, default_value = "always")]
        schedule: String,
    },
    /// Add a classic peer: an Exim or Postfix node that takes and sends
    /// batch SMTP. Its domains are routed to it unless already routed.
    AddClassic {
        name: String,
        /// A mail domain behind it; repeatable.
        #[arg(long = "domain", value_name = "DOMAIN", required = true)]
        domains: Vec<String>,
        /// Its NNCP node (the id is best: it also identifies batches from
        /// it through $NNCP_SENDER).
        #[arg(long, value_name = "NODE")]
        nncp: Option<String>,
    },
    /// Make this node a gateway: the Internet becomes a peer (default name
    /// `internet`) with the default route and an `smtp` uplink, so mail for
    /// every domain without a route leaves by SMTP — to `gateway.smarthost`
    /// if set, else to each domain's MX hosts.
    AddInternet {
        #[arg(default_value = "internet")]
        name: String,
        /// When to deliver: always (default), manual, or time windows.
        #[arg(long, default_value = "always")]
        schedule: String,
    },
    /// List peers with their domains and last exchanges.
    List,
    /// Remove a peer and its routes; its queued mail waits for another route.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub(super) enum UplinkCommand {
    /// Add an uplink to PEER: `link` (the addresses on its card), `folder
    /// DIR` (Syncthing, a shared drive), `usb DIR` (a USB stick's mount
    /// point: used only while mounted), `nncp NODE`, `lora` (the hub's
    /// radio: radio.port must be set).
    Add {
        peer: String,
        #[arg(value_parser = ["link", "folder", "usb", "nncp", "lora"])]
        carrier: String,
        /// The directory or NNCP node; none for a link.
        target: Option<String>,
        /// always, manual, appear (when the peer answers or the stick is
        /// mounted), or windows such as "mon-fri 08:00-18:00; sat 10:00-12:00 +02:00".
        #[arg(long, default_value = "always")]
        schedule: String,
        /// For a folder or USB uplink: when the peer deletes a bundle this
        /// hub left (its import does, once committed), count the items as
        /// acknowledged at once. Only for a folder nobody else tidies up:
        /// a bundle a person deletes is lost mail.
        #[arg(long)]
        deletion_acks: bool,
    },
    /// List uplinks with their schedules and last runs.
    List,
    /// Change an uplink's schedule.
    Schedule { id: i64, schedule: String },
    /// Remove an uplink.
    Remove { id: i64 },
}

#[derive(Subcommand, Debug)]
pub(super) enum RouteCommand {
    /// Send mail for DOMAIN through PEER; DOMAIN `*` (or `default`) is the default route.
    Add { domain: String, peer: String },
    /// List routes.
    List,
    /// Remove the route of DOMAIN.
    Remove { domain: String },
}

#[derive(Subcommand, Debug)]
pub(super) enum GatewayCommand {
    /// The DNS records to publish for every domain this gateway carries
    /// (MX, SPF, DKIM, DMARC), as zone-file lines; DKIM keys are made now
    /// if new. With --check, what the Internet's DNS has of each.
    Dns {
        /// Ask DNS about each record: found, different or missing.
        #[arg(long)]
        check: bool,
        /// Start over with new DKIM keys for DOMAIN (the old files are kept
        /// beside, renamed); publish the new records before mail leaves.
        #[arg(long, value_name = "DOMAIN")]
        new_keys: Option<String>,
    },
}

pub(super) async fn gateway(config: Config, cmd: &GatewayCommand) -> Result<()> {
    let GatewayCommand::Dns { check, new_keys } = cmd;
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = open_relay(&config).await?;
    if let Some(domain) = new_keys {
        relay.new_domain_keys(domain).await?;
        eprintln!("new DKIM keys for {domain}: publish the records below before mail leaves");
    }
    let records = match relay.dns_records().await {
        Ok(r) => r,
        Err(e) => {
            relay.store().close().await;
            return Err(e.into());
        }
    };
    let checked = if *check {
        relay.check_dns(&records).await?
    } else {
        Vec::new()
    };
    let mut domain = "";
    for (i, r) in records.iter().enumerate() {
        if r.domain != domain {
            domain = &r.domain;
            println!("; {domain}");
        }
        println!("{}", r.zone_line());
        if let Some(p) = checked.get(i) {
            match p {
                crate::relay::publish::Published::Different(had) => {
                    println!(";   different: published is {}", had.join(" | "))
                }
                crate::relay::publish::Published::Unknown(why) => {
                    println!(";   not checked: {why}")
                }
                other => println!(";   {}", other.word()),
            }
        }
    }
    relay.store().close().await;
    if checked
        .iter()
        .any(|p| !matches!(p, crate::relay::publish::Published::Found))
    {
        bail!("not every record is published yet (see the lines above)");
    }
    Ok(())
}

pub(super) async fn node(config: Config, cmd: &NodeCommand) -> Result<()> {
    let config = &config;
    with_relay(config, |relay| async move {
        match cmd {
            NodeCommand::Card { addrs, qr } => {
                let addrs = if addrs.is_empty() {
                    let names: Vec<String> =
                        config.hub.hostnames.iter().map(|h| h.to_string()).collect();
                    crate::relay::node::link_addrs(&config.listen.link, &names)
                } else {
                    addrs.clone()
                };
                let text = relay.card(addrs).to_text();
                if *qr {
                    println!("{}", crate::relay::node::qr_text(&text)?);
                }
                println!("{text}");
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn peer(config: Config, cmd: &PeerCommand) -> Result<()> {
    use crate::relay::node::{Card, fingerprint};
    if let PeerCommand::Add { card, .. } = cmd {
        Card::parse(card)?;
    } else if !matches!(cmd, PeerCommand::AddClassic { .. }) {
        datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    }
    let config = &config;
    with_relay(config, |relay| async move {
        match cmd {
            PeerCommand::Add {
                card,
                name,
                schedule,
            } => {
                crate::relay::schedule::Schedule::parse(schedule)?;
                let card = Card::parse(card)?;
                let (row, routes) = relay.add_peer(&card, name.as_deref()).await?;
                println!("added peer {} (node {})", row.name, fingerprint(&card.key));
                for d in routes {
                    println!("route: {d} -> {}", row.name);
                }
                if !card.addrs.is_empty() {
                    let syncer = crate::relay::uplink::Syncer::new(relay.clone());
                    let up = syncer.add(&row.name, "link", "", schedule, false).await?;
                    println!(
                        "uplink {}: live link to {} ({}), schedule {}",
                        up.id,
                        row.name,
                        card.addrs.join(", "),
                        up.schedule
                    );
                }
            }
            PeerCommand::AddClassic {
                name,
                domains,
                nncp,
            } => {
                let (row, routes) = relay
                    .add_classic_peer(name, domains, nncp.as_deref())
                    .await?;
                println!("added classic peer {}", row.name);
                for d in routes {
                    println!("route: {d} -> {}", row.name);
                }
            }
            PeerCommand::AddInternet { name, schedule } => {
                crate::relay::schedule::Schedule::parse(schedule)?;
                let row = relay.add_internet_peer(name).await?;
                let syncer = crate::relay::uplink::Syncer::new(relay.clone());
                let up = syncer.add(&row.name, "smtp", "", schedule, false).await?;
                println!(
                    "added peer {} for the Internet; route: * -> {}",
                    row.name, row.name
                );
                let how = if config.gateway.smarthost.is_empty() {
                    "to each domain's MX hosts".to_string()
                } else {
                    format!("through {}", config.gateway.smarthost)
                };
                println!("uplink {}: smtp {how}, schedule {}", up.id, up.schedule);
            }
            PeerCommand::List => {
                let peers = relay.store().peer_list().await?;
                if peers.is_empty() {
                    println!("no peers yet: add one with `cairn peer add CARD`");
                }
                let now = crate::store::now();
                let ago = |t: Option<i64>| {
                    t.map_or("never".to_string(), |t| {
                        format!("{} ago", human_age(now - t))
                    })
                };
                for p in peers {
                    println!(
                        "{}  {}  domains {}  sent {}  received {}",
                        p.name,
                        crate::relay::node::describe(&p),
                        p.domain_list().join(", "),
                        ago(p.last_sent_at),
                        ago(p.last_received_at)
                    );
                }
            }
            PeerCommand::Remove { name } => {
                relay.remove_peer(name).await?;
                println!("removed peer {name}; mail queued for it waits for another route");
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn route(config: Config, cmd: &RouteCommand) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let config = &config;
    with_relay(config, |relay| async move {
        match cmd {
            RouteCommand::Add { domain, peer } => {
                relay.add_route(domain, peer).await?;
                println!("route: {domain} -> {peer}");
            }
            RouteCommand::List => {
                let routes = relay.store().routes().await?;
                if routes.is_empty() {
                    println!("no routes: mail for other domains waits until one is added");
                }
                for (d, _, p) in routes {
                    let d = if d == "*" {
                        "* (default)".to_string()
                    } else {
                        d
                    };
                    println!("{d} -> {p}");
                }
            }
            RouteCommand::Remove { domain } => {
                relay.remove_route(domain).await?;
                println!("removed the route for {domain}");
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn uplink(config: Config, cmd: &UplinkCommand) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let config = &config;
    with_relay(config, |relay| async move {
        let syncer = crate::relay::uplink::Syncer::new(relay.clone());
        match cmd {
            UplinkCommand::Add {
                peer,
                carrier,
                target,
                schedule,
                deletion_acks,
            } => {
                let up = syncer
                    .add(
                        peer,
                        carrier,
                        target.as_deref().unwrap_or(""),
                        schedule,
                        *deletion_acks,
                    )
                    .await?;
                println!(
                    "uplink {}: {} {} {}, schedule {}{}",
                    up.id,
                    up.peer_name,
                    up.carrier,
                    up.target,
                    up.schedule,
                    if up.deletion_acks {
                        ", a deleted bundle counts as acknowledged"
                    } else {
                        ""
                    }
                );
                if matches!(up.carrier.as_str(), "folder" | "usb")
                    && !std::path::Path::new(&up.target).is_dir()
                {
                    println!(
                        "note: {} is not there yet: the uplink waits until it is (create the folder, or plug in the stick)",
                        up.target
                    );
                }
            }
            UplinkCommand::List => {
                let ups = relay.store().uplinks().await?;
                if ups.is_empty() {
                    println!("no uplinks yet: add one with `cairn uplink add PEER CARRIER`");
                }
                let now = crate::store::now();
                for u in ups {
                    let last = match (u.last_run_at, &u.last_error) {
                        (None, _) => "never ran".to_string(),
                        (Some(t), None) => format!("ok {} ago", human_age(now - t)),
                        (Some(t), Some(e)) => format!("failed {} ago: {e}", human_age(now - t)),
                    };
                    println!(
                        "{}  {}  {} {}  schedule {}{}  {}",
                        u.id,
                        u.peer_name,
                        u.carrier,
                        u.target,
                        u.schedule,
                        if u.deletion_acks {
                            "  deletion = ack"
                        } else {
                            ""
                        },
                        last
                    );
                }
            }
            UplinkCommand::Schedule { id, schedule } => {
                syncer
                    .set_schedule(crate::domain::UplinkId(*id), schedule)
                    .await?;
                println!("uplink {id}: schedule {schedule}");
            }
            UplinkCommand::Remove { id } => {
                syncer.remove(crate::domain::UplinkId(*id)).await?;
                println!("removed uplink {id}");
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn sync(config: Config, only: &Option<String>) -> Result<()> {
    use crate::relay::link::{LinkProgress, LinkState};
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = open_relay(&config).await?;
    let syncer = crate::relay::uplink::Syncer::new(relay.clone());
    let mut board = syncer.board();
    let round = match syncer.sync_now(only.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            relay.store().close().await;
            return Err(e.into());
        }
    };
    let tty = std::io::stderr().is_terminal();
    let line = |u: &crate::relay::uplink::UplinkStatus| {
        use crate::domain::units::{count, human_bytes};
        let p: &LinkProgress = &u.progress;
        let what = if u.target.is_empty() {
            format!("{} {}", u.peer, u.carrier)
        } else {
            format!("{} {} {}", u.peer, u.carrier, u.target)
        };
        let mut l = format!(
            "{what}: {} — sent {} ({}), received {} ({})",
            p.state.as_str(),
            count(p.items_out, "item"),
            human_bytes(p.bytes_out),
            count(p.items_in, "item"),
            human_bytes(p.bytes_in)
        );
        if let Some(e) = &p.error {
            l.push_str(&format!(": {e}"));
        }
        l
    };
    let mut shown: HashMap<crate::domain::UplinkId, LinkState> = HashMap::new();
    loop {
        let b = board.borrow_and_update().clone();
        if b.round == round {
            if tty {
                let all: Vec<String> = b.round_status().into_iter().map(&line).collect();
                eprint!("\r\x1b[K{}", all.join(" | "));
            } else {
                for u in b.round_status() {
                    if shown.get(&u.id) != Some(&u.progress.state) {
                        shown.insert(u.id, u.progress.state);
                        eprintln!("{}", line(u));
                    }
                }
            }
            if !b.round_running {
                break;
            }
        }
        tokio::select! {
            r = board.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
    }
    if tty {
        eprintln!();
    }
    let _ = relay.store().wake_hub().await;
    let b = board.borrow().clone();
    for u in b.round_status() {
        println!("{}", line(u));
    }
    let (ok, failed, c) = b.round_summary();
    println!(
        "{} synced, {failed} failed: sent {}, received {}",
        crate::domain::units::count(ok as u64, "uplink"),
        crate::domain::units::count(c.items_out, "item"),
        crate::domain::units::count(c.items_in, "item")
    );
    relay.store().close().await;
    if failed > 0 {
        bail!("{failed} of {} uplinks failed", ok + failed);
    }
    Ok(())
}
