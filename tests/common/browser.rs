//! A real browser for page tests: Debian's headless Chromium driven over
//! the W3C WebDriver protocol (chromedriver), with a few commands spoken
//! directly as JSON over HTTP. Screenshots go to
//! `target/tmp/screenshots/` and stay there as test artifacts.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A phone (CSS pixels of a common 6" phone) and a desktop window.
pub const PHONE: (u32, u32) = (390, 844);
pub const DESKTOP: (u32, u32) = (1280, 900);

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// One HTTP/1.1 request to chromedriver; the JSON answer's `value`.
fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver may keep the connection open despite `Connection:
    // close`: read the header, then exactly Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the header ended".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse::<usize>().ok()
        } else {
            None
        }
    });
    let mut payload = raw[split + 4..].to_vec();
    match length {
        Some(len) => {
            while payload.len() < len {
                let n = s.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                payload.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            s.read_to_end(&mut payload).map_err(|e| e.to_string())?;
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                payload = dechunk(&payload);
            }
        }
    }
    let v: Value = serde_json::from_slice(&payload).map_err(|e| format!("{e}: {head}"))?;
    if head.starts_with("HTTP/1.1 2") {
        Ok(v["value"].clone())
    } else {
        Err(format!("{method} {path}: {}", v["value"]))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
}

/// Start chromedriver on a free port: it and its port, or `None` when it
/// exited before saying where it listens.
fn start_driver() -> Option<(Child, u16)> {
    // A clean environment: cargo's (LD_LIBRARY_PATH into target/, …)
    // is not the browser's business.
    let mut driver = Command::new(CHROMEDRIVER)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let out = driver.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let port = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = driver.kill();
            let _ = driver.wait();
            return None;
        };
        if let Some(p) = line.split("started successfully on port ").nth(1) {
            break p.trim().trim_end_matches('.').parse::<u16>().unwrap();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Some((driver, port))
}

impl Browser {
    /// Start chromedriver and a headless Chromium window of `size`.
    pub fn start(size: (u32, u32)) -> Browser {
        super::debian_tool(CHROMEDRIVER, "chromium-driver");
        // chromedriver has been seen (once in many runs) to exit before
        // saying its port: a second start is the fix, not a failed test.
        let (driver, port) = (0..3).find_map(|_| start_driver()).expect(
            "chromedriver did not start three times: is chromium-driver installed and working?",
        );
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={},{}", size.0, size.1),
        ];
        if super::RunAs::current().name == "root" {
            // Chromium's sandbox cannot run as root.
            args.push("--no-sandbox".into());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let mut session = Err(String::new());
        for _ in 0..50 {
            session = call(port, "POST", "/session", Some(&caps))
                .map(|v| v["sessionId"].as_str().unwrap_or_default().to_string());
            if session.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let b = Browser {
            driver,
            port,
            session: session.unwrap_or_else(|e| panic!("no Chromium session: {e}")),
        };
        b.resize(size);
        b
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        call(self.port, method, &full, body.as_ref()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    /// The page's HTML as the browser has it now.
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Type into the field `css` (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    /// The setup page of the hub at `base`: its setup code and the admin
    /// password "campfire-42"; logged in afterwards.
    pub fn set_up_admin(&self, base: &str, code: &str) {
        self.goto(&format!("{base}/setup"));
        self.fill("input[name=code]", code);
        self.fill("input[name=password]", "campfire-42");
        self.fill("input[name=confirm]", "campfire-42");
        self.click_to("form[action='/setup'] button[type=submit]", "/admin/setup");
    }

    /// Choose the file at `path` in the file input `css`.
    pub fn upload(&self, css: &str, path: &std::path::Path) {
        let e = self.element(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": path.to_str().unwrap()})),
        );
    }

    /// An attribute of the element `css` as the page has it now.
    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let e = self.element(css);
        self.cmd("GET", &format!("/element/{e}/attribute/{name}"), None)
            .as_str()
            .map(str::to_string)
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Wait (up to 30 s) until `cond` holds: a click that submits a form
    /// may return before the next page has loaded.
    pub fn wait_until(&self, what: &str, cond: impl Fn(&Browser) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{what}: not within 30 s; at {}:\n{}",
            self.url(),
            self.source()
        );
    }

    /// Click `css` and wait until the browser is at a URL ending in `path`.
    pub fn click_to(&self, css: &str, path: &str) {
        self.click(css);
        self.wait_until(&format!("going to {path}"), |b| {
            b.url()
                .split('?')
                .next()
                .unwrap_or_default()
                .ends_with(path)
        });
    }

    /// A window of `size`. Chromium's windows are at least 500 px wide,
    /// so a phone's width is emulated (as DevTools' device mode does):
    /// the page then lays out at exactly that many CSS pixels.
    pub fn resize(&self, size: (u32, u32)) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": size.0.max(500), "height": size.1})),
        );
        let (cmd, params) = if size.0 < 500 {
            (
                "Emulation.setDeviceMetricsOverride",
                json!({"width": size.0, "height": size.1, "deviceScaleFactor": 1, "mobile": true}),
            )
        } else {
            ("Emulation.clearDeviceMetricsOverride", json!({}))
        };
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        );
    }

    /// Run `js` (a function body; `return` gives the value) in the page.
    pub fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// How far the page reaches sideways beyond the window, in CSS
    /// pixels (0: nothing is out of view to the right).
    pub fn overflow_x(&self) -> i64 {
        self.script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        )
        .as_i64()
        .unwrap_or(i64::MAX)
    }

    /// Lay the page out in the dark colour scheme (`true`) or the light
    /// one, as a phone set to dark mode would ask for.
    pub fn dark(&self, on: bool) {
        let value = if on { "dark" } else { "light" };
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{"name": "prefers-color-scheme", "value": value}]}})),
        );
    }

    /// What on the page now would fail a person on a phone, measured in
    /// the page: sideways scrolling; a link, button, field or tick box
    /// (with its label) less than 40 CSS pixels tall — a link inside a
    /// sentence excepted, as WCAG 2.5.8 excepts it; text whose contrast
    /// with what is behind it is below 4.5:1 (WCAG 1.4.3's AA level,
    /// which also allows 3:1 for large text; this asks 4.5:1 of all).
    /// One line per finding, empty when the page passes.
    pub fn audit(&self) -> Vec<String> {
        let v = self.script(AUDIT_JS);
        v.as_array()
            .unwrap_or_else(|| panic!("the audit ran: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn delete_cookies(&self) {
        self.cmd("DELETE", "/cookie", None);
    }

    /// Save a screenshot as `target/tmp/screenshots/NAME.png`; its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The page audit of [`Browser::audit`], run in the page.
const AUDIT_JS: &str = r#"
const out = [];
const root = document.documentElement;
const over = root.scrollWidth - root.clientWidth;
if (over > 0) out.push(`scrolls ${over} px sideways`);
const dark = matchMedia('(prefers-color-scheme: dark)').matches;
function rgba(s) {
  const m = /rgba?\(([^)]*)\)/.exec(s || '');
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(x => x).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function blend(top, below) {
  const a = top[3];
  return [0, 1, 2].map(i => top[i] * a + below[i] * (1 - a)).concat([1]);
}
function lum(c) {
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
}
function behind(el) {
  const chain = [];
  for (let e = el; e; e = e.parentElement) chain.push(rgba(getComputedStyle(e).backgroundColor));
  let bg = dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
  for (const c of chain.reverse()) if (c && c[3] > 0) bg = blend(c, bg);
  return bg;
}
function shown(el) {
  const r = el.getBoundingClientRect();
  const st = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && !el.closest('svg');
}
function name(el) {
  const t = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().replace(/\s+/g, ' ');
  return `<${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''}> "${t.slice(0, 40)}"`;
}
const checked = new Set();
for (const el of document.querySelectorAll('body *')) {
  if (!shown(el) || ['SCRIPT', 'STYLE', 'OPTION', 'svg'].includes(el.tagName)) continue;
  const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  const control = ['INPUT', 'SELECT', 'TEXTAREA', 'BUTTON'].includes(el.tagName) && el.type !== 'hidden';
  if (own || control) {
    const st = getComputedStyle(el);
    const fg = rgba(st.color);
    const bg = behind(el);
    if (fg) {
      const c = blend(fg, bg);
      const l1 = lum(c), l2 = lum(bg);
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      if (ratio < 4.5) out.push(`contrast ${ratio.toFixed(2)}:1 ${name(el)}`);
    }
  }
  let target = null;
  if (el.tagName === 'A' && el.hasAttribute('href')) {
    const p = el.parentElement;
    const rest = p.innerText.replace(el.innerText, '').trim();
    if (!rest || getComputedStyle(p).display.includes('flex')) target = el;
  } else if (el.tagName === 'INPUT' && (el.type === 'checkbox' || el.type === 'radio')) {
    target = el.closest('label') || el;
  } else if (control || el.tagName === 'SUMMARY') {
    target = el;
  }
  if (target && !checked.has(target)) {
    checked.add(target);
    const h = target.getBoundingClientRect().height;
    if (h < 39.5) out.push(`${Math.round(h)} px tall ${name(target)}`);
  }
}
return out;
"#;
