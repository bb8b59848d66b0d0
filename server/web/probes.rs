//! Answers to the phones' connectivity probes, so a phone stays on the
//! hub's Wi-Fi although it has no Internet ("quiet" mode: no sign-in
//! sheet). The appliance's DNS points the probe hosts at the hub; the
//! answers do not depend on the Host header.
//!
//! Android's NetworkMonitor wants HTTP 204 from `/generate_204` (it also
//! probes HTTPS, which cannot succeed offline: the phone shows "partial
//! connectivity" but stays); Apple's captive network assistant wants a
//! page saying `Success`; Windows NCSI and Firefox want fixed bodies.
//! RFC 8908's captive-portal API (DHCP option 114, RFC 8910) says there is
//! no portal.

use super::{AppState, no_store};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Apple's expected answer (captive.apple.com/hotspot-detect.html).
const APPLE_SUCCESS: &str =
    "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>\n";

pub fn router() -> Router<AppState> {
    Router::new()
        // Android (connectivitycheck.gstatic.com, clients3.google.com, …).
        .route("/generate_204", get(no_content))
        .route("/gen_204", get(no_content))
        // Apple iOS and macOS.
        .route("/hotspot-detect.html", get(apple))
        .route("/library/test/success.html", get(apple))
        // Windows (www.msftconnecttest.com, www.msftncsi.com).
        .route("/connecttest.txt", get(|| text("Microsoft Connect Test")))
        .route("/ncsi.txt", get(|| text("Microsoft NCSI")))
        // Firefox (detectportal.firefox.com).
        .route("/success.txt", get(|| text("success\n")))
        // RFC 8908.
        .route("/api/captive", get(captive_api))
}

/// 204 and no body (Android checks the status only; RFC 9110 §8.6 bars a
/// Content-Length on a 204, so none is sent).
async fn no_content() -> Response {
    no_store(StatusCode::NO_CONTENT.into_response())
}

async fn apple() -> Response {
    no_store(
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            APPLE_SUCCESS,
        )
            .into_response(),
    )
}

async fn text(body: &'static str) -> Response {
    no_store(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// RFC 8908 §5: not captive; the venue page is the hub's front page.
async fn captive_api(headers: axum::http::HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("hub.camp");
    let body = serde_json::json!({
        "captive": false,
        "venue-info-url": format!("http://{host}/"),
    });
    no_store(
        (
            [(header::CONTENT_TYPE, "application/captive+json")],
            body.to_string(),
        )
            .into_response(),
    )
}
