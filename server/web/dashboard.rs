//! The admin's first page: how the hub is doing, as tiles that turn amber
//! or red when something needs the admin (failing uplinks, mail with
//! nowhere to go or waiting long, a filling disk, a modem in trouble),
//! what to do next on a new hub (a checklist), and what happened lately
//! in words. Also the printable join poster the checklist points to.

use super::flash::Flash;
use super::guard::{AdminPage, WebResult};
use super::{AppState, no_store};
use crate::domain::units::{count, human_age, human_bytes};
use crate::store::settings::WIFI_SSID;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

/// Set when the join poster was opened (the checklist ticks it off).
const POSTER_SHOWN: &str = "admin.poster_shown";
/// Mail waiting longer than this is "waiting long" on the dashboard.
const LONG_WAIT_SECS: i64 = 24 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/poster", get(poster))
}

/// How a tile looks: fine, needs a look, needs the admin now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Ok,
    Warn,
    Bad,
}

impl Level {
    fn class(self) -> &'static str {
        match self {
            Level::Ok => "tile ok-tile",
            Level::Warn => "tile warn-tile",
            Level::Bad => "tile bad-tile",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Level::Ok => "Fine",
            Level::Warn => "Look",
            Level::Bad => "Act",
        }
    }
}

pub(super) struct Tile {
    level: Level,
    title: String,
    detail: String,
    href: &'static str,
    link: &'static str,
}

impl Tile {
    fn new(
        level: Level,
        title: String,
        detail: String,
        href: &'static str,
        link: &'static str,
    ) -> Tile {
        Tile {
            level,
            title,
            detail,
            href,
            link,
        }
    }
}

/// The uplinks' tile: red when one failed its last run.
pub(super) fn uplinks_tile(ups: &[crate::store::uplinks::UplinkRow]) -> Tile {
    let failed: Vec<_> = ups.iter().filter(|u| u.last_error.is_some()).collect();
    let (level, title, detail) = match (ups.len(), failed.first()) {
        (0, _) => (
            Level::Ok,
            "No uplinks".to_string(),
            "Mail stays in the camp until a peer and an uplink exist.".to_string(),
        ),
        (n, Some(first)) => (
            Level::Bad,
            format!("{} of {} failed", failed.len(), count(n as u64, "uplink")),
            format!(
                "{} ({}): {}",
                first.peer_name,
                first.carrier,
                first.last_error.as_deref().unwrap_or_default()
            ),
        ),
        (n, None) => {
            let never = ups.iter().filter(|u| u.last_run_at.is_none()).count();
            let detail = if never > 0 {
                format!("{never} not run yet.")
            } else {
                "Every uplink worked on its last run.".into()
            };
            (Level::Ok, count(n as u64, "uplink"), detail)
        }
    };
    Tile::new(level, title, detail, "/admin/uplinks", "Uplinks")
}

/// The outbox's tile: amber for mail with no route, held mail, or mail
/// waiting more than a day.
pub(super) fn outbox_tile(items: &[crate::store::OutboxRow], now: i64) -> Tile {
    let no_route = items.iter().filter(|o| o.state == "no-route").count();
    let held = items.iter().filter(|o| o.state == "held").count();
    let long = items
        .iter()
        .filter(|o| now - o.created_at > LONG_WAIT_SECS)
        .count();
    let bytes: i64 = items.iter().map(|o| o.size).sum();
    if no_route > 0 {
        return Tile::new(
            Level::Warn,
            format!("{} with nowhere to go", count(no_route as u64, "message")),
            "No route leads to their domains: add a peer, or a route to one, on the Peers page."
                .into(),
            "/admin/peers",
            "Peers and routes",
        );
    }
    if held > 0 || long > 0 {
        let mut detail = Vec::new();
        if held > 0 {
            detail.push(format!("{held} held by hand (Retry sends them)"));
        }
        if long > 0 {
            detail.push(format!("{long} waiting more than a day"));
        }
        return Tile::new(
            Level::Warn,
            format!("{} waiting", count(items.len() as u64, "message")),
            detail.join("; ") + ".",
            "/admin/outbox",
            "Outbox",
        );
    }
    let (title, detail) = if items.is_empty() {
        (
            "Outbox empty".to_string(),
            "Nothing waits to leave the hub.".to_string(),
        )
    } else {
        (
            format!("{} on their way", count(items.len() as u64, "message")),
            format!(
                "{} waiting for their next sync.",
                human_bytes(bytes.max(0) as u64)
            ),
        )
    };
    Tile::new(Level::Ok, title, detail, "/admin/outbox", "Outbox")
}

/// The disk's tile: amber under 15 % or 1 GiB free, red under 5 % or
/// 200 MiB (mail is refused when the disk is full).
pub(super) fn disk_tile(free: u64, total: u64) -> Tile {
    let pct = free.saturating_mul(100).checked_div(total).unwrap_or(100);
    let level = if pct < 5 || free < 200 << 20 {
        Level::Bad
    } else if pct < 15 || free < 1 << 30 {
        Level::Warn
    } else {
        Level::Ok
    };
    let detail = match level {
        Level::Ok => "Room for mail and bundles.".to_string(),
        _ => "Lower the mail each account may hold, or delete mail sooner (Settings); a larger SD card helps.".to_string(),
    };
    Tile::new(
        level,
        format!("{} free ({pct} %)", human_bytes(free)),
        detail,
        "/admin/settings",
        "Settings",
    )
}

/// The radio's tile, when the hub has one.
fn radio_tile(status: &crate::relay::radio::service::RadioStatus) -> Tile {
    match &status.error {
        Some(e) => Tile::new(
            Level::Bad,
            "The radio has a problem".into(),
            e.clone(),
            "/admin/radio",
            "Radio",
        ),
        None => Tile::new(
            Level::Ok,
            "Radio".into(),
            format!("{} on {}", status.state.as_str(), status.port),
            "/admin/radio",
            "Radio",
        ),
    }
}

struct Step {
    done: bool,
    text: &'static str,
    href: &'static str,
    link: &'static str,
}

struct EventLine {
    ago: String,
    what: String,
}

/// An event of the log in words.
fn event_words(kind: &str, subject: &str, detail: &str) -> String {
    let with = |s: &str| {
        if subject.is_empty() {
            s.to_string()
        } else {
            format!("{s} {subject}")
        }
    };
    let text = match kind {
        "admin.setup_code" => "A setup code was made for the first login".to_string(),
        "admin.password" => format!("The admin password was {detail}"),
        "setup.done" => with("The hub was set up as"),
        "account.created" => with("Account made:"),
        "account.removed" => with("Account deleted:"),
        "account.password" => with("New password for"),
        "account.quota" => with("Quota changed for"),
        "peer.add" => with("Peer added:"),
        "peer.remove" => with("Peer removed:"),
        "uplink.add" => format!("Uplink added to {subject}: {detail}"),
        "uplink.remove" => "An uplink was removed".to_string(),
        "sync.now" => "Sync now was pressed".to_string(),
        "bundle.import" => format!("Bundle from {subject} imported: {detail}"),
        "outbox" => format!("Outbox message {subject}: {detail}"),
        "settings.changed" => "Settings were changed".to_string(),
        "certificate.new" => "A new certificate was made".to_string(),
        "clock.set" => format!("The clock was set from the browser ({detail})"),
        other => [other, subject, detail]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" · "),
    };
    text.trim().to_string()
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
struct Dashboard {
    flash: Flash,
    name: String,
    csrf: String,
    tiles: Vec<Tile>,
    steps: Vec<Step>,
    services: Vec<super::Service>,
    accounts: i64,
    events: Vec<EventLine>,
    version: &'static str,
}

async fn dashboard(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    let store = &state.store;
    let (accounts, outbox, events, ups, peers, ssid, poster) = tokio::try_join!(
        store.account_count(),
        store.outbox(),
        store.recent_events(20),
        store.uplinks(),
        store.peer_list(),
        store.settings_get(WIFI_SSID),
        store.settings_get(POSTER_SHOWN),
    )?;
    let now = crate::store::now();
    let (free, total) = rustix::fs::statvfs(&state.config.data_dir)
        .map(|v| {
            (
                v.f_bavail.saturating_mul(v.f_frsize),
                v.f_blocks.saturating_mul(v.f_frsize),
            )
        })
        .unwrap_or((0, 0));
    let mut tiles = vec![
        uplinks_tile(&ups),
        outbox_tile(&outbox, now),
        disk_tile(free, total),
    ];
    if let Some(r) = &state.radio {
        tiles.push(radio_tile(&r.status().borrow()));
    }
    // The worst first.
    tiles.sort_by_key(|t| std::cmp::Reverse(t.level as u8));
    let setup_done = !super::wizard::pending(&state).await;
    let steps = vec![
        Step {
            done: setup_done,
            text: "Name the hub and set its mail domain, Wi-Fi and clock",
            href: "/admin/setup",
            link: "Set up",
        },
        Step {
            done: ssid.is_some(),
            text: "Say which Wi-Fi newcomers join",
            href: "/admin/settings",
            link: "Settings",
        },
        Step {
            done: poster.is_some(),
            text: "Print the join poster for the camp's notice board",
            href: "/admin/poster",
            link: "Join poster",
        },
        Step {
            done: accounts > 0,
            text: "Make the first accounts (or let campers join by themselves)",
            href: "/admin/accounts",
            link: "Accounts",
        },
        Step {
            done: !peers.is_empty(),
            text: "Add a peer, to carry mail beyond the camp",
            href: "/admin/peers",
            link: "Peers",
        },
    ];
    let steps = if steps.iter().all(|s| s.done) {
        Vec::new()
    } else {
        steps
    };
    let events = events
        .into_iter()
        .map(|e| EventLine {
            ago: format!("{} ago", human_age(now - e.at)),
            what: event_words(
                &e.kind,
                e.subject.as_deref().unwrap_or_default(),
                e.detail.as_deref().unwrap_or_default(),
            ),
        })
        .collect();
    Ok(no_store(Dashboard {
        flash,
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        tiles,
        steps,
        services: state.services.as_ref().clone(),
        accounts,
        events,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(Template, WebTemplate)]
#[template(path = "poster.html")]
struct Poster {
    name: String,
    wifi: Option<super::join::Wifi>,
    join_url: String,
    join_qr: String,
    version: &'static str,
}

/// A page to print and pin up: the Wi-Fi's code, then the join page's.
async fn poster(State(state): State<AppState>, AdminPage(..): AdminPage) -> WebResult {
    let wifi = super::join::wifi(&state).await?;
    let host = state
        .config
        .hub
        .hostnames
        .first()
        .map(|h| h.to_string())
        .unwrap_or_else(|| "hub.camp".into());
    let join_url = format!("http://{host}/join");
    let join_qr = crate::relay::node::qr_svg(&join_url).unwrap_or_default();
    let _ = state.store.settings_set(POSTER_SHOWN, "1").await;
    Ok(no_store(Poster {
        name: state.config.hub.name.clone(),
        wifi,
        join_url,
        join_qr,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uplink(error: Option<&str>, ran: bool) -> crate::store::uplinks::UplinkRow {
        crate::store::uplinks::UplinkRow {
            id: crate::domain::UplinkId::from(1),
            peer_id: crate::domain::PeerId::from(1),
            peer_name: "valley".into(),
            carrier: "folder".into(),
            target: "/media/usb".into(),
            schedule: "always".into(),
            last_run_at: ran.then_some(1),
            last_ok_at: None,
            last_error: error.map(str::to_string),
            deletion_acks: false,
        }
    }

    #[test]
    fn a_failing_uplink_turns_its_tile_red() {
        let t = uplinks_tile(&[uplink(None, true), uplink(Some("no stick"), true)]);
        assert_eq!(t.level, Level::Bad);
        assert_eq!(t.title, "1 of 2 uplinks failed");
        assert!(t.detail.contains("valley (folder): no stick"));
        assert_eq!(uplinks_tile(&[uplink(None, true)]).level, Level::Ok);
        assert_eq!(uplinks_tile(&[]).level, Level::Ok);
    }

    #[test]
    fn the_disk_tile_warns_before_it_is_full() {
        assert_eq!(disk_tile(50 << 30, 100 << 30).level, Level::Ok);
        assert_eq!(disk_tile(10 << 30, 100 << 30).level, Level::Warn);
        assert_eq!(disk_tile(700 << 20, 4 << 30).level, Level::Warn);
        assert_eq!(disk_tile(100 << 20, 64 << 30).level, Level::Bad);
    }

    #[test]
    fn events_read_as_words() {
        assert_eq!(
            event_words("account.created", "dora@camp", ""),
            "Account made: dora@camp"
        );
        assert_eq!(
            event_words("admin.setup_code", "", "created"),
            "A setup code was made for the first login"
        );
        assert_eq!(event_words("x.y", "s", "d"), "x.y · s · d");
    }
}
