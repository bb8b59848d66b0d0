//! A raw HTTP/1.1 client for the web pages: exact status, headers and body.
#![allow(dead_code)]

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as sent (for downloads).
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Every Set-Cookie line.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The value this response sets for cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            let first = c.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }
    /// The value of the hidden input `name` in the body.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].to_string())
    }
}

/// Percent-encode a form value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One request; `cookies` is the Cookie header value ("" for none);
/// `form` is a urlencoded body (POST when present).
pub async fn request(addr: SocketAddr, path: &str, cookies: &str, form: Option<&str>) -> Resp {
    let body = form.map(|f| {
        (
            "application/x-www-form-urlencoded".to_string(),
            f.as_bytes().to_vec(),
        )
    });
    send(addr, path, cookies, body).await
}

/// POST `multipart/form-data`: (name, value, file name).
pub async fn multipart(
    addr: SocketAddr,
    path: &str,
    cookies: &str,
    fields: &[(&str, &[u8], Option<&str>)],
) -> Resp {
    let boundary = "cairn-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value, file) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    send(
        addr,
        path,
        cookies,
        Some((format!("multipart/form-data; boundary={boundary}"), body)),
    )
    .await
}

async fn send(
    addr: SocketAddr,
    path: &str,
    cookies: &str,
    body: Option<(String, Vec<u8>)>,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = match body {
        Some(_) => format!("POST {path} HTTP/1.1\r\n"),
        None => format!("GET {path} HTTP/1.1\r\n"),
    };
    req.push_str("Host: hub\r\nConnection: close\r\n");
    if !cookies.is_empty() {
        req.push_str(&format!("Cookie: {cookies}\r\n"));
    }
    if let Some((ct, b)) = &body {
        req.push_str(&format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some((_, b)) = &body {
        bytes.extend_from_slice(b);
    }
    s.write_all(&bytes).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("response within 30 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let bytes = raw.get(split + 4..).unwrap_or_default().to_vec();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Resp {
        status,
        headers,
        body,
        bytes,
    }
}

/// Set the admin password of a fresh hub through the setup page; returns
/// the session cookie ("cairn_admin=…") and the session's CSRF token.
/// Use the setup code to set the admin password `campfire-42`; the
/// session cookie (`cairn_admin=…`) it leaves.
pub async fn setup_admin(web: SocketAddr, code: &str) -> String {
    let page = request(web, "/setup", "", None).await;
    let form = page.hidden("form").unwrap();
    let r = request(
        web,
        "/setup",
        &format!("cairn_form={form}"),
        Some(&format!(
            "form={form}&code={code}&password=campfire-42&confirm=campfire-42"
        )),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some("/admin/setup"),
        "on to the wizard"
    );
    format!("cairn_admin={}", r.cookie("cairn_admin").unwrap())
}

pub async fn admin_session(hub: &cairn::app::Hub) -> (String, String) {
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let code = hub.report.setup_code.clone().expect("a fresh hub");
    let jar = setup_admin(web, &code).await;
    let dash = request(web, "/admin", &jar, None).await;
    (jar, dash.hidden("csrf").unwrap())
}

/// The first `n` events of a Server-Sent Events stream that does not end
/// by itself, as (event name, data); panics after 30 s.
pub async fn first_events(
    addr: SocketAddr,
    path: &str,
    cookies: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: hub\r\nCookie: {cookies}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        // Chunked framing aside, each event is "event: …\ndata: …\n\n".
        let text = String::from_utf8_lossy(&buf).to_string();
        got.clear();
        for block in text.split("\n\n") {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(name), Some(data)) = (name, data) {
                got.push((name.to_string(), data.to_string()));
            }
        }
        if got.len() >= n {
            got.truncate(n);
            return got;
        }
        let mut chunk = [0u8; 4096];
        let r = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} events within 30 s: {text}"))
            .unwrap();
        assert!(r > 0, "the stream ended after: {text}");
        buf.extend_from_slice(&chunk[..r]);
    }
}
