//! Uplinks and syncing in the admin: the uplinks with their schedules,
//! "Sync now" with live progress (Server-Sent Events), and the sync history.

use super::admin::NoFields;
use super::guard::{Admin, AdminForm, WebError, WebResult};
use super::{AppState, after_gap, no_store};
use crate::domain::UplinkId;
use crate::domain::units::{count, human_age, human_bytes};
use crate::relay::uplink::{Board, UplinkStatus};
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
    name: String,
    csrf: String,
    uplinks: Vec<UplinkLine>,
    peers: Vec<String>,
    version: &'static str,
}

async fn uplinks_page(State(state): State<AppState>, Admin(s): Admin) -> WebResult {
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

async fn uplink_add(
    State(state): State<AppState>,
    AdminForm(_, f): AdminForm<UplinkForm>,
) -> WebResult {
    if f.target.len() > 1024 || f.schedule.len() > 512 || f.peer.len() > 256 {
        return Err(WebError::bad_request("A field is too long."));
    }
    let u = state
        .syncer
        .add(
            &f.peer,
            &f.carrier,
            &f.target,
            &f.schedule,
            f.deletion_acks.is_some(),
        )
        .await?;
    let detail = format!("{} {} {}", u.carrier, u.target, u.schedule);
    let _ = state
        .store
        .event("uplink.add", Some(&u.peer_name), Some(&detail))
        .await;
    Ok(Redirect::to("/admin/uplinks").into_response())
}

#[derive(serde::Deserialize)]
struct ScheduleForm {
    schedule: String,
}

async fn uplink_schedule(
    State(state): State<AppState>,
    Path(id): Path<UplinkId>,
    AdminForm(_, f): AdminForm<ScheduleForm>,
) -> WebResult {
    if f.schedule.len() > 512 {
        return Err(WebError::bad_request("The schedule is too long."));
    }
    state.syncer.set_schedule(id, &f.schedule).await?;
    Ok(Redirect::to("/admin/uplinks").into_response())
}

async fn uplink_remove(
    State(state): State<AppState>,
    Path(id): Path<UplinkId>,
    AdminForm(_, NoFields {}): AdminForm<NoFields>,
) -> WebResult {
    state.syncer.remove(id).await?;
    let _ = state
        .store
        .event("uplink.remove", Some(&id.to_string()), None)
        .await;
    Ok(Redirect::to("/admin/uplinks").into_response())
}

// --------------------------------------------------------------- sync now

async fn sync_now(
    State(state): State<AppState>,
    AdminForm(_, NoFields {}): AdminForm<NoFields>,
) -> WebResult {
    let round = state.syncer.sync_now(None).await?;
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

fn row_view(u: &UplinkStatus) -> RowView {
    let p = &u.progress;
    RowView {
        id: u.id,
        uplink: if u.target.is_empty() {
            format!("{} · {}", u.peer, u.carrier)
        } else {
            format!("{} · {} {}", u.peer, u.carrier, u.target)
        },
        state: p.state.as_str().to_string(),
        sent: format!(
            "{}, {}",
            count(p.items_out, "item"),
            human_bytes(p.bytes_out)
        ),
        received: format!("{}, {}", count(p.items_in, "item"), human_bytes(p.bytes_in)),
        error: p.error.clone().unwrap_or_default(),
    }
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
    name: String,
    csrf: String,
    round: u64,
    running: bool,
    rows: Vec<RowView>,
    summary: String,
    version: &'static str,
}

async fn sync_page(State(state): State<AppState>, Admin(s): Admin) -> WebResult {
    let b = state.syncer.board().borrow().clone();
    Ok(no_store(SyncPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        round: b.round,
        running: b.round_running,
        rows: b.round_status().into_iter().map(row_view).collect(),
        summary: if b.round > 0 && !b.round_running {
            summary_text(&b)
        } else {
            String::new()
        },
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Serialize)]
struct ProgressEvent<'a> {
    round: u64,
    running: bool,
    uplinks: Vec<EventRow<'a>>,
}

#[derive(serde::Serialize)]
struct EventRow<'a> {
    id: UplinkId,
    state: &'a str,
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
                state: u.progress.state.as_str(),
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
    name: String,
    csrf: String,
    runs: Vec<HistoryLine>,
    version: &'static str,
}

/// Rows shown on the history page.
const HISTORY_ROWS: u32 = 200;

async fn history_page(State(state): State<AppState>, Admin(s): Admin) -> WebResult {
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
        runs,
        version: env!("CARGO_PKG_VERSION"),
    }))
}
