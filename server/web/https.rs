//! The admin pages only over HTTPS. The hub's Wi-Fi password is printed
//! for everyone at the camp, and anyone who knows a WPA2 passphrase can
//! read the others' plain HTTP: the admin password, the setup code and the
//! admin's session cookie travel only encrypted. The phones' pages (the
//! join page, `/new`, the status page, the connectivity probes) stay on
//! plain HTTP, where a phone reaches them without a certificate warning.
//! A browser on the hub itself (loopback) is not redirected: nothing it
//! sends leaves the machine.

use super::ClientAddr;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Where the plain-HTTP listener sends the admin pages.
#[derive(Debug, Clone)]
pub struct Https {
    /// The HTTPS listener's port.
    pub port: u16,
    /// The host name for a request that names none (or a strange one).
    pub host: String,
}

/// Whether `path` is one of the admin pages (passwords, setup code,
/// session cookies).
pub fn is_admin_path(path: &str) -> bool {
    ["/admin", "/setup"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// Middleware of the plain-HTTP listener: an admin page asked for from
/// another machine is answered with a permanent redirect to the same page
/// over HTTPS (308 keeps a form's method), anything else as usual.
pub async fn admin_to_https(
    State(https): State<Https>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    req: Request,
    next: Next,
) -> Response {
    if peer.ip().to_canonical().is_loopback() || !is_admin_path(req.uri().path()) {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_of)
        .unwrap_or(&https.host);
    let port = if https.port == 443 {
        String::new()
    } else {
        format!(":{}", https.port)
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let to = format!("https://{host}{port}{path}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, to)],
        "The admin pages are served over HTTPS only.\n",
    )
        .into_response()
}

/// The host part of a `Host` header (without its port), if it is a plain
/// name or address: a redirect never carries anything else.
fn host_of(value: &str) -> Option<&str> {
    let host = if value.starts_with('[') {
        &value[..=value.find(']')?]
    } else {
        value.split(':').next()?
    };
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use tower::ServiceExt;

    fn app(from: &str) -> axum::Router {
        let https = Https {
            port: 8443,
            host: "hub.camp".into(),
        };
        axum::Router::new()
            .route("/", axum::routing::get(|| async { "front" }))
            .route("/join", axum::routing::get(|| async { "join" }))
            .route("/setup", axum::routing::post(|| async { "setup" }))
            .route("/admin/outbox", axum::routing::get(|| async { "outbox" }))
            .layer(axum::middleware::from_fn_with_state(https, admin_to_https))
            .layer(MockConnectInfo(ClientAddr(from.parse().unwrap())))
    }

    async fn ask(from: &str, method: &str, uri: &str, host: Option<&str>) -> (u16, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(h) = host {
            req = req.header(header::HOST, h);
        }
        let r = app(from)
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let to = r
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (r.status().as_u16(), to)
    }

    #[tokio::test]
    async fn admin_pages_from_the_wifi_go_to_https() {
        let phone = "10.42.0.17:50000";
        assert_eq!(
            ask(phone, "GET", "/admin/outbox?x=1", Some("hub.camp")).await,
            (308, "https://hub.camp:8443/admin/outbox?x=1".into())
        );
        assert_eq!(
            ask(phone, "POST", "/setup", Some("10.42.0.1:80")).await,
            (308, "https://10.42.0.1:8443/setup".into())
        );
        assert_eq!(
            ask(phone, "GET", "/admin/outbox", Some("[fd00::1]:80")).await,
            (308, "https://[fd00::1]:8443/admin/outbox".into())
        );
        // A strange or missing Host header: the hub's own name.
        for host in [None, Some("evil.example/x@"), Some("a b")] {
            assert_eq!(
                ask(phone, "GET", "/admin/outbox", host).await,
                (308, "https://hub.camp:8443/admin/outbox".into())
            );
        }
        // The phones' pages stay on plain HTTP.
        for page in ["/", "/join"] {
            assert_eq!(ask(phone, "GET", page, Some("hub.camp")).await.0, 200);
        }
        // Not an admin page, although it starts alike.
        assert!(!is_admin_path("/administrator") && !is_admin_path("/setup-code"));
    }

    #[tokio::test]
    async fn a_browser_on_the_hub_itself_is_not_redirected() {
        for here in ["127.0.0.1:50000", "[::1]:50000", "[::ffff:127.0.0.1]:50000"] {
            assert_eq!(
                ask(here, "GET", "/admin/outbox", Some("localhost")).await.0,
                200,
                "{here}"
            );
        }
    }
}
