//! The radio page: the modem and its state, link quality over time (RSSI
//! and SNR as an SVG plot drawn here, no script needed), air time against
//! each band's budget, the session in progress, and the radio's settings.
//! The state, the session and the air time follow live over Server-Sent
//! Events (`/admin/radio/events`); without script the page shows them as
//! they were when it loaded.

use super::flash::{Flash, again};
use super::guard::{Admin, AdminForm, AdminPage, WebResult};
use super::settings::{restart_soon, restarting, save_config_fields};
use super::{AppState, after_gap, no_store};
use crate::domain::lora::{Region, WINDOW};
use crate::domain::units::Airtime;
use crate::store::admin::AdminSession;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use std::time::Duration;

/// The plot covers this much time.
const PLOT_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Points per line at most: more than a phone screen shows.
const PLOT_POINTS: usize = 300;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/radio", get(radio_page))
        .route("/admin/radio/settings", post(radio_settings))
        .route("/admin/radio/events", get(radio_events))
}

#[derive(serde::Serialize)]
struct BandLine {
    name: String,
    note: String,
    used: String,
    budget: String,
    /// Percent of the legal budget used, for a meter.
    percent: u32,
}

/// What of the radio changes while the page is open, as the page shows it
/// and as each `status` event carries it.
#[derive(serde::Serialize)]
struct Live {
    state: String,
    identity: String,
    error: String,
    /// "-92 dBm, SNR 7.5 dB", or empty when nothing was heard yet.
    heard: String,
    frames: String,
    peer: String,
    progress: String,
    last_session: String,
    bands: Vec<BandLine>,
}

/// Events at most this often: a session changes its progress many times
/// a second.
const EVENT_GAP: Duration = Duration::from_millis(500);
/// And at least this often, for the air-time ledger.
const EVENT_EVERY: Duration = Duration::from_secs(5);

/// The radio as it is now, with the air time of the last hour.
async fn live(state: &AppState) -> Result<Live, crate::store::Error> {
    let now = crate::store::now_ms();
    let by_band = state
        .store
        .airtime_by_band(now - WINDOW.as_millis() as i64)
        .await?;
    let settings = &state.config.radio.settings;
    let status = state
        .radio
        .as_ref()
        .map(|r| r.status().borrow().clone())
        .unwrap_or_default();
    let band_of = |name: &str| {
        [Region::Eu868, Region::Us915]
            .iter()
            .flat_map(|r| r.bands())
            .find(|b| b.name == name)
    };
    let mut bands: Vec<BandLine> = by_band
        .into_iter()
        .filter_map(|(name, us)| {
            let b = band_of(&name)?;
            let budget = b.budget();
            Some(BandLine {
                name: name.clone(),
                note: b.note.to_string(),
                used: Airtime(us as u64).to_string(),
                budget: budget.to_string(),
                percent: ((us as u64).saturating_mul(100) / budget.0.max(1)).min(100) as u32,
            })
        })
        .collect();
    if bands.is_empty()
        && let Ok(b) = settings
            .region
            .band_for(settings.frequency, settings.bandwidth)
    {
        bands.push(BandLine {
            name: b.name.to_string(),
            note: b.note.to_string(),
            used: "0 ms".into(),
            budget: b.budget().to_string(),
            percent: 0,
        });
    }
    let p = &status.progress;
    Ok(Live {
        state: status.state.as_str().to_string(),
        identity: status.identity.clone(),
        error: status.error.clone().unwrap_or_default(),
        heard: match (status.air.last_rssi, status.air.last_snr) {
            (Some(r), Some(s)) => format!("{r} dBm, SNR {s:.1} dB"),
            (Some(r), None) => format!("{r} dBm"),
            _ => String::new(),
        },
        frames: format!(
            "{} sent, {} heard",
            status.air.frames_sent, status.air.frames_heard
        ),
        peer: status.peer.clone().unwrap_or_default(),
        progress: format!(
            "{}: {} of {} items out, {} of {} in; {} bytes out, {} in",
            p.state.as_str(),
            p.items_out,
            p.to_send,
            p.items_in,
            p.to_receive,
            p.bytes_out,
            p.bytes_in
        ),
        last_session: status.last_session.clone().unwrap_or_default(),
        bands,
    })
}

/// The radio page's live part: a `status` event with [`Live`] at once,
/// then on every change of the radio (at most every [`EVENT_GAP`]) and at
/// least every [`EVENT_EVERY`]. 404 on a hub without a radio.
async fn radio_events(State(state): State<AppState>, _: Admin) -> WebResult {
    let Some(radio) = state.radio.clone() else {
        return Ok((StatusCode::NOT_FOUND, "this hub has no radio\n").into_response());
    };
    let status = radio.status();
    let stream = futures_util::stream::unfold(
        (state, status, true),
        |(state, mut status, first)| async move {
            if !first {
                // The hub stopping ends the stream, as does a closed
                // status; no change within EVENT_EVERY sends one anyway.
                let change = tokio::time::timeout(EVENT_EVERY, status.changed());
                match after_gap(&state.stop, EVENT_GAP, change).await {
                    None | Some(Ok(Err(_))) => return None,
                    Some(_) => {}
                }
                status.borrow_and_update();
            }
            let event = match live(&state).await {
                Ok(l) => Event::default()
                    .event("status")
                    .json_data(&l)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable")),
                Err(e) => Event::default()
                    .event("problem")
                    .data(format!("the hub's database is not answering: {e}")),
            };
            Some((
                Ok::<Event, std::convert::Infallible>(event),
                (state, status, false),
            ))
        },
    );
    Ok(no_store(Sse::new(stream).keep_alive(
        KeepAlive::new().interval(Duration::from_secs(15)),
    )))
}

#[derive(Template, WebTemplate)]
#[template(path = "radio.html")]
struct RadioPage {
    flash: super::flash::Flash,
    name: String,
    csrf: String,
    version: &'static str,
    configured: bool,
    live: Live,
    plot: String,
    /// The settings as they run, or as a form with a mistake sent them.
    settings: RadioForm,
    bit_rate: String,
    frame_time: String,
    /// The serial devices plugged in, as the picker offers them.
    devices: Vec<DeviceLine>,
}

/// A serial device on the page: its name, the node it is, whether the
/// hub can use it, and that in words.
struct DeviceLine {
    path: String,
    device: String,
    usable: bool,
    words: String,
}

/// The USB serial adapters plugged in, each opened once by this process
/// (so what the hub's service may not open says so), except the one the
/// radio holds now.
async fn device_lines(state: &AppState) -> Vec<DeviceLine> {
    use crate::carriers::lora::devices::{Opens, serial_devices};
    let in_use = state
        .radio
        .as_ref()
        .map(|_| state.config.radio.port.clone());
    let found = tokio::task::spawn_blocking(move || {
        serial_devices(std::path::Path::new("/dev"), in_use.as_deref())
    })
    .await
    .unwrap_or_default();
    found
        .into_iter()
        .map(|d| {
            let (usable, words) = match d.opens {
                Opens::Yes => (true, "the hub can open it".to_string()),
                Opens::InUse => (true, "this hub's radio has it open".to_string()),
                Opens::No(why) => (false, format!("the hub cannot open it: {why}")),
            };
            DeviceLine {
                device: if d.device == d.path {
                    String::new()
                } else {
                    d.device
                },
                path: d.path,
                usable,
                words,
            }
        })
        .collect()
}

/// RSSI (dBm) and SNR (dB) over the last day as an inline SVG: two lines
/// on one time axis, RSSI on the left scale, SNR on the right.
fn plot(samples: &[crate::store::radio::SignalRow], now: i64) -> String {
    if samples.is_empty() {
        return String::new();
    }
    let (w, h, left, right, top, bottom) = (600.0, 200.0, 44.0, 36.0, 10.0, 24.0);
    let x0 = now - PLOT_SPAN_MS;
    let x = |t: i64| left + (t - x0).max(0) as f64 / PLOT_SPAN_MS as f64 * (w - left - right);
    let (rssi_lo, rssi_hi) = (-140.0, -30.0);
    let (snr_lo, snr_hi) = (-20.0, 15.0);
    let y = |v: f64, lo: f64, hi: f64| {
        top + (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0)) * (h - top - bottom)
    };
    let step = samples.len().div_ceil(PLOT_POINTS).max(1);
    let mut rssi = String::new();
    let mut snr = String::new();
    for chunk in samples.chunks(step) {
        let t = chunk[chunk.len() / 2].at_ms;
        let r = chunk.iter().map(|s| s.rssi as f64).sum::<f64>() / chunk.len() as f64;
        let n = chunk.iter().map(|s| s.snr).sum::<f64>() / chunk.len() as f64;
        rssi.push_str(&format!("{:.1},{:.1} ", x(t), y(r, rssi_lo, rssi_hi)));
        snr.push_str(&format!("{:.1},{:.1} ", x(t), y(n, snr_lo, snr_hi)));
    }
    let mut svg = format!(
        r##"<svg id="signal-plot" viewBox="0 0 {w} {h}" role="img" aria-label="RSSI and SNR over the last 24 hours" xmlns="http://www.w3.org/2000/svg"><rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        w - left - right,
        h - top - bottom
    );
    for (v, label) in [
        (-130.0, "-130"),
        (-100.0, "-100"),
        (-70.0, "-70"),
        (-40.0, "-40"),
    ] {
        svg.push_str(&format!(
            r##"<text x="{}" y="{:.1}" font-size="10" text-anchor="end" fill="#06c">{label}</text>"##,
            left - 4.0,
            y(v, rssi_lo, rssi_hi) + 3.0
        ));
    }
    for (v, label) in [(-15.0, "-15"), (-5.0, "-5"), (5.0, "5"), (15.0, "15")] {
        svg.push_str(&format!(
            r##"<text x="{}" y="{:.1}" font-size="10" fill="#c60">{label}</text>"##,
            w - right + 4.0,
            y(v, snr_lo, snr_hi) + 3.0
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{left}" y="{}" font-size="10">24 h ago</text><text x="{}" y="{}" font-size="10" text-anchor="end">now</text>"##,
        h - 6.0,
        w - right,
        h - 6.0
    ));
    svg.push_str(&format!(
        r##"<polyline class="rssi" fill="none" stroke="#06c" stroke-width="1.5" points="{}"/><polyline class="snr" fill="none" stroke="#c60" stroke-width="1.5" points="{}"/></svg>"##,
        rssi.trim_end(),
        snr.trim_end()
    ));
    svg
}

async fn radio_page(State(state): State<AppState>, AdminPage(s, flash): AdminPage) -> WebResult {
    radio_view(&state, s, flash).await
}

/// The radio page; a settings form with a mistake comes back with what
/// was typed (the page shows the form's values, not the running ones).
async fn radio_view(state: &AppState, s: AdminSession, flash: Flash) -> WebResult {
    let now = crate::store::now_ms();
    let (live, samples) =
        tokio::try_join!(live(state), state.store.signal_since(now - PLOT_SPAN_MS))?;
    let devices = device_lines(state).await;
    let c = &state.config.radio;
    let settings = &c.settings;
    let region = settings.region;
    let v = |field: &str, running: String| flash.value(field, &running).to_string();
    Ok(no_store(RadioPage {
        name: state.config.hub.name.clone(),
        csrf: s.csrf,
        version: env!("CARGO_PKG_VERSION"),
        configured: state.radio.is_some(),
        live,
        plot: plot(&samples, now),
        settings: RadioForm {
            port: v("port", c.port.clone()),
            modem: v("modem", settings.model.as_str().into()),
            region: v("region", region.as_str().into()),
            frequency: v("frequency", settings.frequency.to_string()),
            bandwidth: v("bandwidth", settings.bandwidth.to_string()),
            sf: v("sf", settings.sf.to_string()),
            cr: v("cr", settings.cr.to_string()),
            txpower: v("txpower", settings.txpower.to_string()),
            network: v("network", settings.network.to_string()),
            address: v("address", settings.address.to_string()),
            max_item: v("max_item", c.max_item.to_string()),
        },
        bit_rate: format!("{:.0} bit/s", settings.modulation().bit_rate()),
        frame_time: settings.airtime(settings.mtu()).to_string(),
        devices,
        flash,
    }))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RadioForm {
    port: String,
    modem: String,
    region: String,
    frequency: String,
    bandwidth: String,
    sf: String,
    cr: String,
    txpower: String,
    network: String,
    address: String,
    max_item: String,
}

/// The settings form's fields: (field, its label on the page).
const FIELDS: [(&str, &str); 11] = [
    ("port", "Serial device"),
    ("modem", "Modem"),
    ("region", "Region"),
    ("frequency", "Frequency"),
    ("bandwidth", "Bandwidth"),
    ("sf", "Spreading factor"),
    ("cr", "Coding rate"),
    ("txpower", "Power"),
    ("network", "RYLR network id"),
    ("address", "RYLR address"),
    ("max_item", "Largest message sent by radio"),
];

/// A message about a field ("txpower: 30 is out of range") as the page
/// says it: the field it belongs to, and its label instead of its key.
fn at_field(message: &str) -> (&'static str, String) {
    let (key, rest) = message.split_once(": ").unwrap_or(("", message));
    let key = key.trim_start_matches("radio.");
    match FIELDS.iter().find(|(f, _)| *f == key) {
        Some((field, label)) => (field, format!("{label}: {rest}.")),
        None => ("", format!("{message}.")),
    }
}

async fn radio_settings(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<RadioForm>,
) -> WebResult {
    let values: Vec<(&'static str, String)> = FIELDS
        .iter()
        .zip([
            &f.port,
            &f.modem,
            &f.region,
            &f.frequency,
            &f.bandwidth,
            &f.sf,
            &f.cr,
            &f.txpower,
            &f.network,
            &f.address,
            &f.max_item,
        ])
        .map(|((field, _), v)| (*field, v.clone()))
        .collect();
    let fields = match checked_fields(&state, &f) {
        Ok(fields) => fields,
        Err(message) => {
            let (field, message) = at_field(&message);
            let flash = Flash::problem(field, message, values);
            return again(StatusCode::BAD_REQUEST, radio_view(&state, s, flash).await);
        }
    };
    if fields.is_empty() {
        state.notices.put(&s, "Nothing changed.");
        return Ok(axum::response::Redirect::to("/admin/radio").into_response());
    }
    save_config_fields(&state.store, &fields).await?;
    restart_soon(&state);
    Ok(restarting(
        &state,
        "The hub restarts with the new radio settings.",
    ))
}

/// The form's settings checked as the configuration file's would be; empty
/// when they are what runs now. The error is "key: what is wrong".
fn checked_fields(
    state: &AppState,
    f: &RadioForm,
) -> Result<Vec<(&'static str, toml::Value)>, String> {
    let text = |s: &str| toml::Value::String(s.trim().to_string());
    let number = |key: &str, s: &str| -> Result<toml::Value, String> {
        s.trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{key}: \u{201c}{}\u{201d} is not a whole number", s.trim()))
    };
    let fields = vec![
        ("radio.port", text(&f.port)),
        ("radio.modem", text(&f.modem)),
        ("radio.region", text(&f.region)),
        ("radio.frequency", number("frequency", &f.frequency)?),
        ("radio.bandwidth", number("bandwidth", &f.bandwidth)?),
        ("radio.sf", number("sf", &f.sf)?),
        ("radio.cr", number("cr", &f.cr)?),
        ("radio.txpower", number("txpower", &f.txpower)?),
        ("radio.network", number("network", &f.network)?),
        ("radio.address", number("address", &f.address)?),
        ("radio.max_item", text(&f.max_item)),
    ];
    let mut next = (*state.config).clone();
    for (key, value) in &fields {
        next.set_field(key, value)
            .map_err(|e| format!("{key}: {e}"))?;
    }
    if !next.radio.port.is_empty()
        && let Some(first) = next.radio.settings.problems().into_iter().next()
    {
        return Err(first);
    }
    if next.radio == state.config.radio {
        return Ok(Vec::new());
    }
    Ok(fields)
}
