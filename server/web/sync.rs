//! Uplinks and syncing in the admin: the uplinks with their schedules,
//! "Sync now" with live progress (Server-Sent Events), and the sync history.

use super::admin::NoFields;
use super::confirm::{Ask, ConfirmForm, ask, confirmed};
use super::flash::{Flash, again};
use super::guard::{Admin, AdminForm, AdminPage, WebResult};
use super::{AppState, after_gap, no_store};
use crate::domain::UplinkId;
use crate::domain::units::{count, human_age, human_bytes};
use crate::relay::uplink::{Board, UplinkStatus};
use crate::store::admin::AdminSession;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use std::time::Duration;

/// Least time between two progress events of one stream: a fast sync
/// changes its counters thousands of times a second.
const EVENT_GAP: Duration = Duration::from_millis(150);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/uplinks", get(uplinks_page))
        .route("/admin/uplinks/add", post(uplink_add))
        .route("/admin/uplinks/{id}/schedule", post(uplink_schedule))
        .route("/admin/uplinks/{id}/remove", post(uplink_remove))
        .route("/admin/sync", get(sync_page).post(sync_now))
        .route("/admin/sync/events", get(sync_events))
        .route("/admin/history", get(history_page))
}

// ---------------------------------------------------------------- uplinks

struct UplinkLine {
    id: UplinkId,
    peer: String,
    carrier: String,
    target: String,
    schedule: String,
    deletion_acks: bool,
    last: String,
    error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "uplinks.html")]
struct UplinksPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    uplinks: Vec<UplinkLine>,
    peers: Vec<String>,
    version: &'static str,
}

async fn uplinks_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    uplinks_view(&state, s, flash).await
}

/// The uplinks page; a form with a mistake shows it again with `flash`.
async fn uplinks_view(state: &AppState, s: AdminSession, flash: Flash) -> WebResult {
    let (ups, peers) = tokio::try_join!(state.store.uplinks(), state.store.peer_list())?;
    let now = crate::store::now();
    let uplinks = ups
        .into_iter()
        .map(|u| UplinkLine {
            last: match (u.last_run_at, &u.last_error) {
                (None, _) => "never".into(),
                (Some(t), None) => format!("ok, {} ago", human_age(now - t)),
                (Some(t), Some(_)) => format!("failed, {} ago", human_age(now - t)),
            },
            error: u.last_error.unwrap_or_default(),
            id: u.id,
            peer: u.peer_name,
            carrier: u.carrier,
            target: u.target,
            schedule: u.schedule,
            deletion_acks: u.deletion_acks,
        })
        .collect();
    Ok(no_store(UplinksPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        uplinks,
        peers: peers.into_iter().map(|p| p.name).collect(),
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize)]
struct UplinkForm {
    peer: String,
    carrier: String,
    #[serde(default)]
    target: String,
    schedule: String,
    /// A checkbox: present ("on") when ticked.
    #[serde(default)]
    deletion_acks: Option<String>,
}

/// What is wrong with an uplink form, in the form's words and at its
/// field, before the relay is asked (its own checks speak to the command
/// line). `None`: nothing this page can tell.
fn uplink_mistake(f: &UplinkForm, radio: bool) -> Option<(&'static str, String)> {
    let target = f.target.trim();
    let appear = f.schedule.trim().eq_ignore_ascii_case("appear");
    match f.carrier.as_str() {
        "folder" | "usb" if !std::path::Path::new(target).is_absolute() => Some((
            "uplink-target",
            "Name the folder in full: where the USB stick is mounted (like /media/usb) or the shared folder (like /srv/sync/camp).".into(),
        )),
        "folder" | "usb" if !appear && !std::path::Path::new(target).is_dir() => Some((
            "uplink-target",
            format!(
                "There is no folder {target} on the hub now. Plug in the USB stick (or mount the shared folder) and add the uplink again — or choose the schedule appear, to sync whenever it shows up."
            ),
        )),
        "link" | "lora" if !target.is_empty() => Some((
            "uplink-target",
            "A live link or the radio needs no folder or NNCP node: leave that field empty.".into(),
        )),
        "lora" if !radio => Some((
            "uplink-carrier",
            "This hub has no radio yet: set up its modem on the Radio page first.".into(),
        )),
        "nncp" if !crate::relay::nncp::node_name_ok(target) => Some((
            "uplink-target",
            "Give the peer's NNCP node: its name or id from NNCP's configuration (letters, digits, - _ .).".into(),
        )),
        _ if f.deletion_acks.is_some() && !matches!(f.carrier.as_str(), "folder" | "usb") => Some((
            "uplink-acks",
            "Only a folder or USB stick uplink can count a deleted bundle as delivered: untick it, or choose one of those.".into(),
        )),
        _ => crate::relay::schedule::Schedule::parse(&f.schedule)
            .err()
            .map(|e| ("uplink-schedule", format!("That schedule does not work: {e}. Use always, manual, appear, or time windows like mon-fri 08:00-18:00."))),
    }
}

async fn uplink_add(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<UplinkForm>,
) -> WebResult {
    let values = vec![
        ("uplink-peer", f.peer.clone()),
        ("uplink-carrier", f.carrier.clone()),
        ("uplink-target", f.target.clone()),
        ("uplink-schedule", f.schedule.clone()),
        (
            "uplink-acks",
            super::flash::on(f.deletion_acks.is_some()).to_string(),
        ),
    ];
    let too_long = f.target.len() > 1024 || f.schedule.len() > 512 || f.peer.len() > 256;
    let mistake = if too_long {
        Some(("uplink-target", "A field is too long.".to_string()))
    } else {
        uplink_mistake(&f, !state.config.radio.port.is_empty())
    };
    let message = match mistake {
        Some(m) => m,
        None => match state
            .syncer
            .add(
                &f.peer,
                &f.carrier,
                &f.target,
                &f.schedule,
                f.deletion_acks.is_some(),
            )
            .await
        {
            Ok(u) => {
                let detail = format!("{} {} {}", u.carrier, u.target, u.schedule);
                let _ = state
                    .store
                    .event("uplink.add", Some(&u.peer_name), Some(&detail))
                    .await;
                state.notices.put(
                    &s,
                    format!(
                        "Added a {} uplink to {} ({}).",
                        u.carrier, u.peer_name, u.schedule
                    ),
                );
                return Ok(Redirect::to("/admin/uplinks").into_response());
            }
            Err(e) if e.is_temporary() => return Err(e.into()),
            Err(e) => ("uplink-target", e.to_string()),
        },
    };
    let flash = Flash::problem(message.0, message.1, values);
    again(
        axum::http::StatusCode::BAD_REQUEST,
        uplinks_view(&state, s, flash).await,
    )
}

#[derive(serde::Deserialize)]
struct ScheduleForm {
    schedule: String,
}

async fn uplink_schedule(
    State(state): State<AppState>,
    Path(id): Path<UplinkId>,
    AdminForm(s, f): AdminForm<ScheduleForm>,
) -> WebResult {
    let problem = if f.schedule.len() > 512 {
        Some("The schedule is too long.".to_string())
    } else {
        match state.syncer.set_schedule(id, &f.schedule).await {
            Ok(_) => None,
            Err(e) if e.is_temporary() => return Err(e.into()),
            Err(e) => Some(format!(
                "The schedule \"{}\" does not work: {e}. Use always, manual, appear, or time windows like mon-fri 08:00-18:00.",
                f.schedule.trim()
            )),
        }
    };
    if let Some(message) = problem {
        return again(
            axum::http::StatusCode::BAD_REQUEST,
            uplinks_view(&state, s, Flash::problem("", message, Vec::new())).await,
        );
    }
    state
        .notices
        .put(&s, format!("The schedule is now {}.", f.schedule.trim()));
    Ok(Redirect::to("/admin/uplinks").into_response())
}

async fn uplink_remove(
    State(state): State<AppState>,
    Path(id): Path<UplinkId>,
    AdminForm(s, f): AdminForm<ConfirmForm>,
) -> WebResult {
    if !confirmed(&f.confirm) {
        return Ok(ask(
            &state,
            s,
            Ask {
                title: "Remove this uplink?".into(),
                consequence: "The hub stops syncing that way; mail for the peer waits in the outbox for another uplink, a bundle by hand or Sync now. The peer and its routes stay.".into(),
                action: format!("/admin/uplinks/{id}/remove"),
                fields: Vec::new(),
                button: "Remove the uplink",
                back: "/admin/uplinks",
            },
        ));
    }
    state.syncer.remove(id).await?;
    let _ = state
        .store
        .event("uplink.remove", Some(&id.to_string()), None)
        .await;
    state.notices.put(&s, "Removed the uplink.");
    Ok(Redirect::to("/admin/uplinks").into_response())
}

// --------------------------------------------------------------- sync now

async fn sync_now(
    State(state): State<AppState>,
    AdminForm(s, NoFields {}): AdminForm<NoFields>,
) -> WebResult {
    let round = match state.syncer.sync_now(None).await {
        Ok(r) => r,
        Err(e) if e.is_temporary() => return Err(e.into()),
        // Nothing to run (no uplink ready): said on the sync page, with
        // why each uplink was skipped.
        Err(e) => {
            let flash = Flash::problem("", format!("Nothing synced: {e}."), Vec::new());
            return again(
                axum::http::StatusCode::CONFLICT,
                sync_view(&state, s, flash).await,
            );
        }
    };
    let _ = state
        .store
        .event("sync.now", None, Some(&format!("round {round}")))
        .await;
    Ok(Redirect::to("/admin/sync").into_response())
}

struct RowView {
    id: UplinkId,
    uplink: String,
    state: String,
    sent: String,
    received: String,
    error: String,
}

/// Where an uplink's sync is, in words; a link still dialling says what it
/// waits for, so a long wait does not look like a hang.
fn state_words(u: &UplinkStatus) -> String {
    match u.progress.state {
        crate::relay::sync::LinkState::Connecting => format!(
            "connecting: waiting for {} to answer (up to {} s per address)",
            u.peer,
            crate::relay::link::CONNECT_TIMEOUT.as_secs()
        ),
        s => s.as_str().to_string(),
    }
}

fn row_view(u: &UplinkStatus) -> RowView {
    let p = &u.progress;
    RowView {
        id: u.id,
        uplink: if u.target.is_empty() {
            format!("{} · {}", u.peer, u.carrier)
        } else {
            format!("{} · {} {}", u.peer, u.carrier, u.target)
        },
        state: state_words(u),
        sent: format!(
            "{}, {}",
            count(p.items_out, "item"),
            human_bytes(p.bytes_out)
        ),
        received: format!("{}, {}", count(p.items_in, "item"), human_bytes(p.bytes_in)),
        error: p.error.clone().unwrap_or_default(),
    }
}

/// How the summary is marked: "ok" only when nothing failed.
fn summary_class(failed: usize) -> &'static str {
    if failed == 0 { "ok" } else { "warn" }
}

fn summary_text(b: &Board) -> String {
    let (ok, failed, c) = b.round_summary();
    format!(
        "{} synced, {failed} failed: sent {} ({}), received {} ({})",
        count(ok as u64, "uplink"),
        count(c.items_out, "item"),
        human_bytes(c.bytes_out),
        count(c.items_in, "item"),
        human_bytes(c.bytes_in)
    )
}

#[derive(Template, WebTemplate)]
#[template(path = "sync.html")]
struct SyncPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    round: u64,
    running: bool,
    rows: Vec<RowView>,
    summary: String,
    summary_class: &'static str,
    version: &'static str,
}

async fn sync_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    sync_view(&state, s, flash).await
}

async fn sync_view(state: &AppState, s: AdminSession, flash: Flash) -> WebResult {
    let b = state.syncer.board().borrow().clone();
    Ok(no_store(SyncPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        round: b.round,
        running: b.round_running,
        rows: b.round_status().into_iter().map(row_view).collect(),
        summary: if b.round > 0 && !b.round_running {
            summary_text(&b)
        } else {
            String::new()
        },
        summary_class: summary_class(b.round_summary().1),
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Serialize)]
struct ProgressEvent {
    round: u64,
    running: bool,
    uplinks: Vec<EventRow>,
}

#[derive(serde::Serialize)]
struct EventRow {
    id: UplinkId,
    state: String,
    sent: String,
    received: String,
    error: String,
    items_out: u64,
    items_in: u64,
    bytes_out: u64,
    bytes_in: u64,
}

#[derive(serde::Serialize)]
struct SummaryEvent {
    round: u64,
    ok: usize,
    failed: usize,
    items_out: u64,
    items_in: u64,
    bytes_out: u64,
    bytes_in: u64,
    text: String,
}

fn progress_event(b: &Board) -> Event {
    let uplinks = b
        .round_status()
        .into_iter()
        .map(|u| {
            let v = row_view(u);
            EventRow {
                id: u.id,
                state: v.state,
                sent: v.sent,
                received: v.received,
                error: v.error,
                items_out: u.progress.items_out,
                items_in: u.progress.items_in,
                bytes_out: u.progress.bytes_out,
                bytes_in: u.progress.bytes_in,
            }
        })
        .collect();
    Event::default()
        .event("progress")
        .json_data(ProgressEvent {
            round: b.round,
            running: b.round_running,
            uplinks,
        })
        .expect("progress serialises")
}

fn summary_event(b: &Board) -> Event {
    let (ok, failed, c) = b.round_summary();
    Event::default()
        .event("summary")
        .json_data(SummaryEvent {
            round: b.round,
            ok,
            failed,
            items_out: c.items_out,
            items_in: c.items_in,
            bytes_out: c.bytes_out,
            bytes_in: c.bytes_in,
            text: summary_text(b),
        })
        .expect("summary serialises")
}

/// Progress of the current round as Server-Sent Events: `progress` on
/// every change (at most every [`EVENT_GAP`]), then one `summary`, then
/// the stream ends.
async fn sync_events(State(state): State<AppState>, _: Admin) -> WebResult {
    enum Step {
        Watch,
        Finished,
    }
    let board = state.syncer.board();
    let stream = futures_util::stream::unfold(
        (board, state.stop, Step::Watch, true),
        |(mut board, stop, step, first)| async move {
            if let Step::Finished = step {
                return None;
            }
            // The hub stopping ends the stream, as does a closed board.
            if !first
                && !matches!(
                    after_gap(&stop, EVENT_GAP, board.changed()).await,
                    Some(Ok(()))
                )
            {
                return None;
            }
            let b = board.borrow_and_update().clone();
            if b.round > 0 && !b.round_running {
                let events = vec![
                    Ok::<Event, std::convert::Infallible>(progress_event(&b)),
                    Ok(summary_event(&b)),
                ];
                return Some((events, (board, stop, Step::Finished, false)));
            }
            Some((
                vec![Ok(progress_event(&b))],
                (board, stop, Step::Watch, false),
            ))
        },
    );
    let flat = futures_util::StreamExt::flat_map(stream, futures_util::stream::iter);
    Ok(no_store(Sse::new(flat).keep_alive(
        KeepAlive::new().interval(Duration::from_secs(15)),
    )))
}

// ---------------------------------------------------------------- history

struct HistoryLine {
    when: String,
    peer: String,
    carrier: String,
    sent: String,
    received: String,
    duration: String,
    error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "history.html")]
struct HistoryPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    runs: Vec<HistoryLine>,
    version: &'static str,
}

/// Rows shown on the history page.
const HISTORY_ROWS: u32 = 200;

async fn history_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    let rows = state.store.sync_history(HISTORY_ROWS).await?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let runs = rows
        .into_iter()
        .map(|r| HistoryLine {
            when: super::admin::utc(r.started_at),
            duration: match r.finished_at {
                Some(f) => format!("{} s", (f - r.started_at).max(0)),
                None => "unfinished".into(),
            },
            sent: format!(
                "{}, {}",
                count(n(r.items_out), "item"),
                human_bytes(n(r.bytes_out))
            ),
            received: format!(
                "{}, {}",
                count(n(r.items_in), "item"),
                human_bytes(n(r.bytes_in))
            ),
            error: r.error.unwrap_or_default(),
            peer: r.peer_name,
            carrier: r.carrier,
        })
        .collect();
    Ok(no_store(HistoryPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        flash,
        runs,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_still_dialling_says_what_it_waits_for() {
        let mut u = UplinkStatus {
            id: UplinkId::from(1),
            peer: "valley".into(),
            carrier: "link".into(),
            target: String::new(),
            running: true,
            progress: Default::default(),
        };
        u.progress.state = crate::relay::sync::LinkState::Connecting;
        assert_eq!(
            row_view(&u).state,
            "connecting: waiting for valley to answer (up to 10 s per address)"
        );
        u.progress.state = crate::relay::sync::LinkState::Transfer;
        assert_eq!(row_view(&u).state, "transferring");
        assert_eq!(summary_class(0), "ok");
        assert_eq!(summary_class(1), "warn");
    }
}
